"""The engine: the job queue's SQL, per database dialect.

:class:`Engine` is the behaviour - what the rest of the queue asks of the database - with the
statements that read the same on both dialects. The hot ones, which differ, are written per
dialect side by side in ``engines/postgres.py`` and ``engines/sqlite.py``: inserting many jobs
in one statement, fetching (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; the one writer on
SQLite), acknowledging outcomes in batches, staging due jobs, locking a unique key.
:func:`engine_for` picks the one for a database or transaction.

Every statement that ends an execution guards on ``state = 'executing'`` and on the node
that runs it: an outcome that arrives after the job was cancelled (by ``cancel_job``), or
from a node the lifeline took for lost while the job runs again elsewhere, changes nothing.

Notifications: inserting (or staging, or putting back) available jobs notifies
:data:`INSERT_CHANNEL` with the queue's name, so that idle producers wake at once; the
PostgreSQL engine sends them from the same statement, SQLite's through the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias

from trunkline import db

from .job import COLUMNS, STATES, State
from .migrations import NODES_TABLE, QUEUES_TABLE, TABLE
from .new_job import NewJob

__all__ = [
    "INSERT_CHANNEL",
    "SIGNAL_CHANNEL",
    "Connection",
    "Engine",
    "Insert",
    "engine_for",
]

INSERT_CHANNEL = "trunkline_jobs_insert"
"""Notified with a queue's name when jobs become available in it."""

SIGNAL_CHANNEL = "trunkline_jobs_signal"
"""Notified with JSON commands for every node: cancel a job, pause, resume or scale a queue."""

Connection: TypeAlias = "db.Database | db.Transaction"
"""Where the queue's statements run: a database, or a transaction of the caller's."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The nodes' heartbeats (heartbeat.py, lifeline.py, pruner.py).
_FORGET_NODE = db.Query("jobs.forget_node", f"DELETE FROM {NODES_TABLE} WHERE node = $1")
_NODES = db.Query(
    "jobs.nodes", f"SELECT node, started_at, beat_at, queues FROM {NODES_TABLE} ORDER BY node"
)
_PRUNE_NODES = db.Query(
    "jobs.prune_nodes",
    f"""DELETE FROM {NODES_TABLE}
        WHERE beat_at < $1
              AND NOT EXISTS (SELECT 1 FROM {TABLE}
                              WHERE state = 'executing' AND attempted_by = {NODES_TABLE}.node)""",
)

_GET = db.Query("jobs.get", f"SELECT {COLUMNS} FROM {TABLE} WHERE id = $1")
_STATE = db.Query("jobs.state", f"SELECT state FROM {TABLE} WHERE id = $1")
_CANCELLED_AMONG = db.Query(
    "jobs.cancelled_among",
    postgresql=f"SELECT id FROM {TABLE} WHERE id = ANY($1::bigint[]) AND state = 'cancelled'",
    sqlite=f"""SELECT id FROM {TABLE}
        WHERE id IN (SELECT value FROM json_each($1)) AND state = 'cancelled'""",
)
_NEXT_DUE = db.Query(
    "jobs.next_due",
    f"SELECT scheduled_at FROM {TABLE} WHERE state IN ('scheduled', 'retryable') "
    "ORDER BY scheduled_at LIMIT 1",
)
_STATS = db.Query(
    "jobs.stats", f"SELECT queue, state, count(*) AS count FROM {TABLE} GROUP BY queue, state"
)
_PUT_BACK = db.Query(
    "jobs.put_back",
    f"""UPDATE {TABLE}
        SET state = 'available', attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END
        WHERE state = 'executing' AND queue = $1 AND attempted_by = $2
            AND attempted_at >= $3""",
)
_RETRY = db.Query(
    "jobs.retry",
    f"""UPDATE {TABLE}
        SET state = 'available', scheduled_at = $2,
            max_attempts = CASE WHEN max_attempts > attempt THEN max_attempts ELSE attempt + 1 END,
            completed_at = NULL, discarded_at = NULL, cancelled_at = NULL
        WHERE id = $1 AND state NOT IN ('available', 'executing')
        RETURNING {COLUMNS}""",
)
_CANCEL = db.Query(
    "jobs.cancel",
    f"""UPDATE {TABLE} SET state = 'cancelled', cancelled_at = $2
        WHERE id = $1 AND state NOT IN ('completed', 'discarded', 'cancelled')
        RETURNING {COLUMNS}""",
)

# Queue settings (trunkline_job_queues): one row per queue changed for every node.
_QUEUE_SETTINGS_COLUMNS = "queue, paused, queue_limit, updated_at"
_QUEUE_SETTINGS = db.Query(
    "jobs.queue_settings",
    f"SELECT {_QUEUE_SETTINGS_COLUMNS} FROM {QUEUES_TABLE} WHERE queue = $1",
)
_ALL_QUEUE_SETTINGS = db.Query(
    "jobs.all_queue_settings",
    f"SELECT {_QUEUE_SETTINGS_COLUMNS} FROM {QUEUES_TABLE} ORDER BY queue",
)
_SET_PAUSED = db.Query(
    "jobs.set_paused",
    f"""INSERT INTO {QUEUES_TABLE} (queue, paused, updated_at) VALUES ($1, $2, $3)
        ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at
        RETURNING {_QUEUE_SETTINGS_COLUMNS}""",
)
_SET_LIMIT = db.Query(
    "jobs.set_limit",
    f"""INSERT INTO {QUEUES_TABLE} (queue, queue_limit, updated_at) VALUES ($1, $2, $3)
        ON CONFLICT (queue) DO UPDATE
        SET queue_limit = excluded.queue_limit, updated_at = excluded.updated_at
        RETURNING {_QUEUE_SETTINGS_COLUMNS}""",
)


class Insert:
    """One row to insert: a :class:`~trunkline.jobs.NewJob` with its state and times resolved."""

    __slots__ = ("job", "scheduled_at", "state")

    def __init__(self, job: NewJob, state: State, scheduled_at: datetime) -> None:
        self.job = job
        self.state = state
        self.scheduled_at = scheduled_at


class Engine:
    """What the queue asks of the database; see the module documentation.

    Subclasses implement the methods that raise ``NotImplementedError``, for one dialect,
    and give the ``*_statement`` texts of the methods written here once.
    """

    dialect: ClassVar[str]
    # The statements that differ by dialect only in their text; the methods that run them
    # are written once, below.
    fetch_statement: ClassVar[db.Query]
    beat_statement: ClassVar[db.Query]
    rescue_statement: ClassVar[db.Query]
    prune_statement: ClassVar[db.Query]

    # -- inserting -----------------------------------------------------------------------------

    async def insert(self, conn: Connection, rows: Sequence[Insert], now: datetime) -> list[int]:
        """Insert ``rows`` in one statement, inserted at ``now``; their ids, in order.

        Notifies :data:`INSERT_CHANNEL` once per queue given an available job (on commit,
        when ``conn`` is a transaction).
        """
        raise NotImplementedError

    async def lock_unique(self, tx: db.Transaction, key: str) -> None:
        """Hold the unique ``key`` until ``tx`` ends, against concurrent inserts."""
        raise NotImplementedError

    async def find_unique(
        self, tx: db.Transaction, key: str, states: Sequence[State], since: datetime
    ) -> db.Row | None:
        """The oldest job with ``key`` in one of ``states``, inserted at ``since`` or later."""
        raise NotImplementedError

    # -- a producer's work ---------------------------------------------------------------------

    async def fetch(
        self, database: db.Database, queue: str, limit: int, node: str, now: datetime
    ) -> list[db.Row]:
        """Take up to ``limit`` available jobs of ``queue``, first by priority, then
        ``scheduled_at``, then id: mark them executing by ``node`` (their attempt + 1) and
        return them in that order. Jobs another node is taking are skipped, not waited for.
        """
        rows = await database.fetch(self.fetch_statement, queue, limit, now, node)
        # RETURNING follows no order: put them back in the queue's.
        rows.sort(key=_queue_order)
        return rows

    # Outcomes: each ends only executions still executing on ``node``, so an outcome that
    # comes late - after a cancel_job, or from a node the lifeline took for lost and whose
    # job runs again elsewhere - changes nothing.

    async def complete(
        self, database: db.Database, ids: Sequence[int], now: datetime, node: str
    ) -> None:
        """Mark the jobs ``ids`` executing on ``node`` completed."""
        raise NotImplementedError

    async def retry(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        errors: Sequence[str],
        node: str,
    ) -> None:
        """Mark jobs executing on ``node`` retryable at their time, each appending its error
        (JSON)."""
        raise NotImplementedError

    async def discard(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        """Mark jobs executing on ``node`` discarded, each appending its error (JSON); a job whose
        ``errors`` is not a JSON array (a malformed row) gets a new one."""
        raise NotImplementedError

    async def cancel(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        """Mark jobs executing on ``node`` cancelled, each appending its error (JSON)."""
        raise NotImplementedError

    async def snooze(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        node: str,
    ) -> None:
        """Put jobs executing on ``node`` back to ``scheduled`` at their time, giving their
        attempt back."""
        raise NotImplementedError

    async def release(
        self, database: db.Database, queue: str, ids: Sequence[int], node: str
    ) -> None:
        """Make the jobs ``ids`` of ``queue``, taken by ``node`` and never started there,
        available again, giving their attempt back; the queue is notified."""
        raise NotImplementedError

    async def put_back(
        self, database: db.Database, queue: str, node: str, since: datetime = EPOCH
    ) -> int:
        """Make every job of ``queue`` executing on ``node``, fetched at ``since`` or later,
        available again, giving its attempt back: what a queue does when it stops, its jobs
        no longer running. Returns how many there were, and notifies the queue when there
        were some.

        ``since`` is when this run of the node started: jobs fetched before, by an earlier
        run under the same name that died, are the lifeline's, and their attempt counts.
        """
        count = await database.execute(_PUT_BACK, queue, node, since)
        if count:
            await self.notify_queues(database, (queue,))
        return count

    # -- the stager ------------------------------------------------------------------------------

    async def stage(self, database: db.Database, now: datetime, limit: int) -> dict[str, int]:
        """Make up to ``limit`` scheduled and retryable jobs due at ``now`` available; how
        many each queue got (each of those queues is notified)."""
        raise NotImplementedError

    async def next_due(self, database: db.Database) -> datetime | None:
        """When the next scheduled or retryable job is due, or ``None`` if none waits."""
        value: datetime | None = await database.fetch_val(_NEXT_DUE)
        return value

    async def notify_queues(self, conn: Connection, queues: Iterable[str]) -> None:
        """Notify :data:`INSERT_CHANNEL` for each of ``queues``."""
        for queue in queues:
            await conn.notify(INSERT_CHANNEL, queue)

    # -- nodes: the heartbeat, the lifeline, the pruner --------------------------------------------

    async def beat(
        self, database: db.Database, node: str, started_at: datetime, now: datetime, queues: str
    ) -> None:
        """Write ``node``'s row of the running nodes: started at ``started_at``, alive at
        ``now``, running ``queues`` (JSON)."""
        await database.execute(self.beat_statement, node, started_at, now, queues)

    async def forget_node(self, database: db.Database, node: str) -> None:
        """Delete ``node``'s row: it stopped, and left no job executing."""
        await database.execute(_FORGET_NODE, node)

    async def nodes(self, conn: Connection) -> list[db.Row]:
        """The nodes' rows: node, started_at, beat_at, queues (JSON), by node."""
        return await conn.fetch(_NODES)

    async def rescue(
        self,
        database: db.Database,
        cutoff: datetime,
        node: str,
        now: datetime,
        message: str,
        limit: int,
    ) -> list[db.Row]:
        """Rescue up to ``limit`` jobs executing on lost nodes: nodes (not ``node``) whose
        row beat before ``cutoff``, or which have no row and fetched the job before
        ``cutoff``. Each becomes ``available`` if it has attempts left, else ``discarded``
        (at ``now``); its attempt stays counted, and an error entry is appended, its message
        the dead node's name followed by ``message``. Returns their (id, queue, state,
        attempted_by); the queues that got available jobs are notified."""
        rows = await database.fetch(
            self.rescue_statement, cutoff, node, now, now.isoformat(), message, limit
        )
        await self.notify_queues(database, sorted({r[1] for r in rows if r[2] == "available"}))
        return rows

    async def prune(self, database: db.Database, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` completed, discarded and cancelled jobs that ended before
        ``cutoff``; how many."""
        return await database.execute(self.prune_statement, cutoff, limit)

    async def prune_nodes(self, database: db.Database, cutoff: datetime) -> int:
        """Delete the rows of nodes that last beat before ``cutoff`` and have no job
        executing; how many."""
        return await database.execute(_PRUNE_NODES, cutoff)

    # -- inspecting and managing -------------------------------------------------------------------

    async def get(self, conn: Connection, job_id: int) -> db.Row | None:
        return await conn.fetch_one(_GET, job_id)

    async def state_of(self, conn: Connection, job_id: int) -> State | None:
        state: State | None = await conn.fetch_val(_STATE, job_id)
        return state

    signals_cross_processes: ClassVar[bool] = True
    """Whether a notification reaches every node (PostgreSQL's do; SQLite's stay in the
    process that sent them, so its nodes look for cancelled jobs on a poll)."""

    async def cancelled_among(self, conn: Connection, ids: Sequence[int]) -> list[int]:
        """Those of ``ids`` that are cancelled."""
        arg: Any = list(ids) if self.dialect == "postgresql" else json.dumps(list(ids))
        return [row[0] for row in await conn.fetch(_CANCELLED_AMONG, arg)]

    async def list_jobs(
        self,
        conn: Connection,
        *,
        state: State | None,
        queue: str | None,
        worker: str | None,
        limit: int,
    ) -> list[db.Row]:
        """Jobs matching the filters given, newest first."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("state", state), ("queue", queue), ("worker", worker)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        args.append(limit)
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        return await conn.fetch(
            f"SELECT {COLUMNS} FROM {TABLE} {condition}ORDER BY id DESC LIMIT ${len(args)}", *args
        )

    async def retry_job(self, conn: Connection, job_id: int, now: datetime) -> db.Row | None:
        """Make a job that is not available or executing available now, with at least one
        attempt left; the row, or ``None`` if there is no such job."""
        row = await conn.fetch_one(_RETRY, job_id, now)
        if row is not None:
            await self.notify_queues(conn, (row[2],))
        return row

    async def cancel_job(self, conn: Connection, job_id: int, now: datetime) -> db.Row | None:
        """Cancel a job that has not ended; the row, or ``None`` if there is no such job."""
        return await conn.fetch_one(_CANCEL, job_id, now)

    async def stats(self, conn: Connection) -> dict[str, dict[State, int]]:
        """Jobs per state, per queue (every state present, 0 when none)."""
        counts: dict[str, dict[State, int]] = {}
        for queue, state, count in await conn.fetch(_STATS):
            per_state = counts.get(queue)
            if per_state is None:
                per_state = counts[queue] = dict.fromkeys(STATES, 0)
            per_state[state] = count
        return counts

    # -- queue settings ----------------------------------------------------------------------------

    async def queue_settings(self, conn: Connection, queue: str) -> db.Row | None:
        """The settings row of ``queue`` (queue, paused, queue_limit, updated_at), or
        ``None`` if none was ever written."""
        return await conn.fetch_one(_QUEUE_SETTINGS, queue)

    async def all_queue_settings(self, conn: Connection) -> list[db.Row]:
        """Every settings row, by queue name."""
        return await conn.fetch(_ALL_QUEUE_SETTINGS)

    async def set_paused(self, conn: Connection, queue: str, paused: bool, now: datetime) -> db.Row:
        """Record that ``queue`` is paused (or not) on every node; the row as it is now."""
        row = await conn.fetch_one(_SET_PAUSED, queue, paused, now)
        assert row is not None  # an upsert returns its row
        return row

    async def set_limit(self, conn: Connection, queue: str, limit: int, now: datetime) -> db.Row:
        """Record the limit of ``queue`` on every node; the row as it is now."""
        row = await conn.fetch_one(_SET_LIMIT, queue, limit, now)
        assert row is not None
        return row


def engine_for(conn: Connection) -> Engine:
    """The engine for the dialect of ``conn``."""
    dialect = conn.dialect
    engine = _ENGINES.get(dialect)
    if engine is None:
        if dialect == "postgresql":
            from .engines.postgres import PostgresEngine

            engine = PostgresEngine()
        else:
            from .engines.sqlite import SQLiteEngine

            engine = SQLiteEngine()
        _ENGINES[dialect] = engine
    return engine


_ENGINES: dict[str, Engine] = {}


def _queue_order(row: db.Row) -> tuple[int, datetime, int]:
    # priority, scheduled_at, id: positions in COLUMNS.
    return row[8], row[12], row[0]
