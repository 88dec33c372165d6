"""The PostgreSQL engine: many nodes share the table.

- **Fetch** takes the head of a queue with ``FOR UPDATE SKIP LOCKED``, so concurrent
  producers (on this node or others) each get different jobs without waiting for one another.
  The candidates are chosen in a ``MATERIALIZED`` CTE: as a plain ``IN (subquery)`` the
  planner may run the ``LIMIT`` subquery in a nested loop and update more rows than asked.
- **Batches** travel as arrays (``unnest``): one statement inserts any number of jobs, and one
  acknowledges any number of outcomes of a kind.
- **Notifications**: in a caller's transaction, the insert statement sends its wake-up
  itself (``pg_notify``), delivered when the transaction commits. Outside one, a lone
  insert (none other of this node in flight) notifies itself too: one commit. Inserts made
  while others are in flight leave their wake-up to an announcer that sends one ``NOTIFY``
  per queue for a whole burst of inserts: a notifying commit holds a server-wide lock
  through its WAL flush, which would make concurrent enqueuers commit one at a time.
- **Unique keys** are locked with ``pg_advisory_xact_lock``, held until the transaction ends.

The statements are PostgreSQL's only: each ``Query`` is given one text, which this engine
alone runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from trunkline import db, otp

from ..engine import INSERT_CHANNEL, Connection, Engine, Insert
from ..job import COLUMNS, State
from ..migrations import NODES_TABLE, TABLE

__all__ = ["PostgresEngine"]

log = logging.getLogger("trunkline.jobs")

_RETURNING = ", ".join(f"j.{column.strip()}" for column in COLUMNS.split(","))

_INSERT_ONE = db.Query(
    "jobs.insert",
    f"""
        INSERT INTO {TABLE} (state, queue, worker, args, meta, tags, priority, max_attempts,
                             inserted_at, scheduled_at, unique_key)
        VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11)
        RETURNING id""",
)
_INSERT_ONE_AND_NOTIFY = db.Query(
    "jobs.insert",
    f"""
        WITH job AS (
            INSERT INTO {TABLE} (state, queue, worker, args, meta, tags, priority, max_attempts,
                                 inserted_at, scheduled_at, unique_key)
            VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11)
            RETURNING id)
        SELECT id, pg_notify($12, $2)::text FROM job""",
)
# Ids come back sorted: identities are drawn in the order of the SELECT (by ordinality), so
# the i-th smallest is the i-th job.
_INSERT_MANY = db.Query(
    "jobs.insert_many",
    f"""
        WITH jobs AS (
            INSERT INTO {TABLE} (state, queue, worker, args, meta, tags, priority,
                                 max_attempts, inserted_at, scheduled_at, unique_key)
            SELECT u.state, u.queue, u.worker, u.args::jsonb, u.meta::jsonb, u.tags::jsonb,
                   u.priority, u.max_attempts, $1, u.scheduled_at, u.unique_key
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::text[], $8::smallint[], $9::integer[], $10::timestamptz[],
                        $11::text[]) WITH ORDINALITY
                 AS u(state, queue, worker, args, meta, tags, priority, max_attempts,
                      scheduled_at, unique_key, n)
            ORDER BY u.n
            RETURNING id)
        SELECT (SELECT array_agg(id ORDER BY id) FROM jobs),
               (SELECT count(*) FROM (SELECT pg_notify($12, q) FROM unnest($13::text[]) AS q)
                AS notified)""",
)
_NOTIFY_QUEUES = db.Query(
    "jobs.notify", "SELECT pg_notify($1, queue) FROM unnest($2::text[]) AS queue"
)
_LOCK = db.Query("jobs.lock_unique", "SELECT pg_advisory_xact_lock($1)")
_FIND_UNIQUE = db.Query(
    "jobs.find_unique",
    f"""
        SELECT {COLUMNS} FROM {TABLE}
        WHERE unique_key = $1 AND state = ANY($2::text[]) AND inserted_at >= $3
        ORDER BY id LIMIT 1""",
)
_FETCH = db.Query(
    "jobs.fetch",
    f"""
        WITH next AS MATERIALIZED (
            SELECT id FROM {TABLE}
            WHERE state = 'available' AND queue = $1
            ORDER BY priority, scheduled_at, id
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        UPDATE {TABLE} AS j
        SET state = 'executing', attempt = j.attempt + 1, attempted_at = $3, attempted_by = $4
        FROM next WHERE j.id = next.id
        RETURNING {_RETURNING}""",
)
_COMPLETE = db.Query(
    "jobs.complete",
    f"""
        UPDATE {TABLE} SET state = 'completed', completed_at = $2
        WHERE id = ANY($1::bigint[]) AND state = 'executing' AND attempted_by = $3""",
)
_RETRYABLE = db.Query(
    "jobs.retryable",
    f"""
        UPDATE {TABLE} AS j
        SET state = 'retryable', scheduled_at = u.scheduled_at,
            errors = j.errors || jsonb_build_array(u.error::jsonb)
        FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) AS u(id, scheduled_at, error)
        WHERE j.id = u.id AND j.state = 'executing' AND j.attempted_by = $4""",
)
_DISCARD = db.Query(
    "jobs.discard",
    f"""
        UPDATE {TABLE} AS j
        SET state = 'discarded', discarded_at = $3,
            errors = CASE WHEN jsonb_typeof(j.errors) = 'array'
                          THEN j.errors || jsonb_build_array(u.error::jsonb)
                          ELSE jsonb_build_array(u.error::jsonb) END
        FROM unnest($1::bigint[], $2::text[]) AS u(id, error)
        WHERE j.id = u.id AND j.state = 'executing' AND j.attempted_by = $4""",
)
_CANCEL = db.Query(
    "jobs.cancelled",
    f"""
        UPDATE {TABLE} AS j
        SET state = 'cancelled', cancelled_at = $3,
            errors = j.errors || jsonb_build_array(u.error::jsonb)
        FROM unnest($1::bigint[], $2::text[]) AS u(id, error)
        WHERE j.id = u.id AND j.state = 'executing' AND j.attempted_by = $4""",
)
_SNOOZE = db.Query(
    "jobs.snooze",
    f"""
        UPDATE {TABLE} AS j
        SET state = 'scheduled', scheduled_at = u.scheduled_at,
            attempt = CASE WHEN j.attempt > 0 THEN j.attempt - 1 ELSE 0 END
        FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, scheduled_at)
        WHERE j.id = u.id AND j.state = 'executing' AND j.attempted_by = $3""",
)
_RELEASE = db.Query(
    "jobs.release",
    f"""
        UPDATE {TABLE}
        SET state = 'available', attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END
        WHERE id = ANY($1::bigint[]) AND state = 'executing' AND attempted_by = $2""",
)
_STAGE = db.Query(
    "jobs.stage",
    f"""
        WITH due AS MATERIALIZED (
            SELECT id FROM {TABLE}
            WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= $1
            ORDER BY scheduled_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED),
        staged AS (
            UPDATE {TABLE} AS j SET state = 'available'
            FROM due WHERE j.id = due.id
            RETURNING j.queue)
        SELECT queue, count(*), pg_notify($3, queue)::text FROM staged GROUP BY queue""",
)
_BEAT = db.Query(
    "jobs.beat",
    f"""
        INSERT INTO {NODES_TABLE} (node, started_at, beat_at, queues)
        VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (node) DO UPDATE
        SET started_at = EXCLUDED.started_at, beat_at = EXCLUDED.beat_at,
            queues = EXCLUDED.queues""",
)
# A node without a row counts from when it fetched the job: its row is written before its
# queues start, so only a job fetched before the cutoff can be a lost one's.
_RESCUE = db.Query(
    "jobs.rescue",
    f"""
        WITH lost AS MATERIALIZED (
            SELECT j.id FROM {TABLE} AS j
            LEFT JOIN {NODES_TABLE} AS n ON n.node = j.attempted_by
            WHERE j.state = 'executing'
                  AND ((j.attempted_by <> $2 AND COALESCE(n.beat_at, j.attempted_at) < $1)
                       OR j.attempted_at < n.started_at)
            ORDER BY j.id
            LIMIT $6
            FOR UPDATE OF j SKIP LOCKED)
        UPDATE {TABLE} AS j
        SET state = CASE WHEN j.attempt < j.max_attempts THEN 'available' ELSE 'discarded' END,
            discarded_at = CASE WHEN j.attempt < j.max_attempts THEN j.discarded_at ELSE $3 END,
            errors = CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                          ELSE '[]'::jsonb END
                     || jsonb_build_array(jsonb_build_object(
                            'attempt', j.attempt, 'at', $4::text, 'node', j.attempted_by,
                            'type', 'NodeLost',
                            'message', 'node ' || quote_literal(j.attempted_by) || $5::text,
                            'traceback', NULL))
        FROM lost WHERE j.id = lost.id AND j.state = 'executing'
        RETURNING j.id, j.queue, j.state, j.attempted_by""",
)
_PRUNE = db.Query(
    "jobs.prune",
    f"""
        WITH old AS MATERIALIZED (
            SELECT id FROM {TABLE}
            WHERE state IN ('completed', 'discarded', 'cancelled')
                  AND COALESCE(completed_at, discarded_at, cancelled_at) < $1
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        DELETE FROM {TABLE} AS j USING old WHERE j.id = old.id""",
)


class PostgresEngine(Engine):
    """The engine for PostgreSQL; see the module documentation."""

    dialect = "postgresql"
    fetch_statement = _FETCH
    beat_statement = _BEAT
    rescue_statement = _RESCUE
    prune_statement = _PRUNE

    async def insert(self, conn: Connection, rows: Sequence[Insert], now: datetime) -> list[int]:
        queues = sorted({row.job.queue for row in rows if row.state == "available"})
        # In the caller's transaction, the statement itself notifies (on commit); so does a
        # lone insert outside one. Otherwise the wake-up follows, coalesced, from an
        # announcer: a commit that notifies holds, through its WAL flush, a lock that every
        # other notifying commit of the server waits for, so concurrent enqueuers would
        # commit one at a time.
        in_transaction = isinstance(conn, db.Transaction)
        if len(rows) == 1:
            row = rows[0]
            job = row.job
            args = (
                row.state,
                job.queue,
                job.worker,
                job.args_json,
                job.meta_json,
                job.tags_json,
                job.priority,
                job.max_attempts,
                now,
                row.scheduled_at,
                job.unique_key,
            )
            if queues and in_transaction:
                ids = [await conn.fetch_val(_INSERT_ONE_AND_NOTIFY, *args, INSERT_CHANNEL)]
            elif queues and self._alone(conn):
                # No other insert of this node is in flight: a notifying commit has nobody
                # to hold up, and one commit is cheaper than an insert and a NOTIFY.
                assert isinstance(conn, db.Database)
                inserting = self._inserting
                inserting[conn] = inserting.get(conn, 0) + 1
                try:
                    ids = [await conn.fetch_val(_INSERT_ONE_AND_NOTIFY, *args, INSERT_CHANNEL)]
                finally:
                    if inserting[conn] == 1:
                        del inserting[conn]
                    else:
                        inserting[conn] -= 1
                return ids
            else:
                ids = [await conn.fetch_val(_INSERT_ONE, *args)]
        else:
            jobs = [row.job for row in rows]
            result = await conn.fetch_one(
                _INSERT_MANY,
                now,
                [row.state for row in rows],
                [job.queue for job in jobs],
                [job.worker for job in jobs],
                [job.args_json for job in jobs],
                [job.meta_json for job in jobs],
                [job.tags_json for job in jobs],
                [job.priority for job in jobs],
                [job.max_attempts for job in jobs],
                [row.scheduled_at for row in rows],
                [job.unique_key for job in jobs],
                INSERT_CHANNEL,
                queues if in_transaction else [],
            )
            assert result is not None
            ids = result[0] or []
        if queues and not in_transaction:
            assert isinstance(conn, db.Database)
            _Announcer.announce(conn, queues)
        return ids

    # Notifying inserts in flight outside transactions, per database.
    _inserting: ClassVar[dict[db.Database, int]] = {}

    def _alone(self, conn: Connection) -> bool:
        return conn not in self._inserting and conn not in _Announcer.running

    async def lock_unique(self, tx: db.Transaction, key: str) -> None:
        # Advisory lock ids are the whole server's: hash the key with our table's name.
        digest = hashlib.blake2b(f"{TABLE}:{key}".encode(), digest_size=8).digest()
        await tx.execute(_LOCK, int.from_bytes(digest, "big", signed=True))

    async def find_unique(
        self, tx: db.Transaction, key: str, states: Sequence[State], since: datetime
    ) -> db.Row | None:
        return await tx.fetch_one(_FIND_UNIQUE, key, list(states), since)

    async def complete(
        self, database: db.Database, ids: Sequence[int], now: datetime, node: str
    ) -> None:
        await database.execute(_COMPLETE, ids, now, node)

    async def retry(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        errors: Sequence[str],
        node: str,
    ) -> None:
        await database.execute(_RETRYABLE, ids, scheduled_at, errors, node)

    async def discard(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        await database.execute(_DISCARD, ids, errors, now, node)

    async def cancel(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        await database.execute(_CANCEL, ids, errors, now, node)

    async def snooze(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        node: str,
    ) -> None:
        await database.execute(_SNOOZE, ids, scheduled_at, node)

    async def release(
        self, database: db.Database, queue: str, ids: Sequence[int], node: str
    ) -> None:
        if await database.execute(_RELEASE, ids, node):
            await self.notify_queues(database, (queue,))

    async def stage(self, database: db.Database, now: datetime, limit: int) -> dict[str, int]:
        rows = await database.fetch(_STAGE, now, limit, INSERT_CHANNEL)
        return {row[0]: row[1] for row in rows}


class _Announcer:
    """Sends the wake-ups of jobs inserted outside a transaction, after their insert has
    committed, for one database: one ``NOTIFY`` per queue for every burst of inserts.

    The first insert of a burst starts a process that notifies the queues named so far;
    inserts made meanwhile add theirs for its next round; it ends when a round finds none.
    A failure is only logged: notifications are wake-ups, and the producers' polls stand in
    for a lost one.
    """

    __slots__ = ("database", "queues")

    running: ClassVar[dict[db.Database, _Announcer]] = {}

    def __init__(self, database: db.Database) -> None:
        self.database = database
        self.queues: dict[str, None] = {}  # an ordered set: notified in the order announced

    @classmethod
    def announce(cls, database: db.Database, queues: list[str]) -> None:
        announcer = cls.running.get(database)
        if announcer is None:
            announcer = cls.running[database] = cls(database)
            otp.spawn(announcer.run)
        announcer.queues.update(dict.fromkeys(queues))

    async def run(self) -> None:
        try:
            while self.queues:
                queues = list(self.queues)
                self.queues.clear()
                try:
                    await self.database.execute(_NOTIFY_QUEUES, INSERT_CHANNEL, queues)
                except db.DatabaseClosed:
                    return  # nobody to wake through it any more
                except db.DatabaseError as error:
                    log.warning("jobs: could not notify queues %s: %s", ", ".join(queues), error)
        finally:
            del self.running[self.database]
