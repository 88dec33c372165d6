"""The SQLite engine: one node, one writer.

SQLite has one writer at a time, so a fetch is a plain ``UPDATE ... RETURNING``: nobody can
take the same rows meanwhile. Batches travel as one JSON parameter read with ``json_each``
(one statement for any number of jobs or outcomes); timestamps inside it are written in the
driver's own format (see ``docs/database.md``), so that they compare with the timestamps it
writes from parameters.
Notifications are the database's, delivered inside the node.

In ``UPDATE ... FROM json_each(...)`` every column of the table is qualified: ``json_each``
has columns of its own, ``id`` among them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from trunkline import db

from ..engine import Connection, Engine, Insert
from ..job import COLUMNS, State
from ..migrations import NODES_TABLE, TABLE

__all__ = ["SQLiteEngine"]

_T = TABLE

_INSERT_ONE = db.Query(
    "jobs.insert",
    f"""INSERT INTO {_T} (state, queue, worker, args, meta, tags, priority, max_attempts,
                          inserted_at, scheduled_at, unique_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        RETURNING id""",
)
# Each element of $1: [state, queue, worker, args, meta, tags, priority, max_attempts,
# scheduled_at, unique_key]. Rowids are drawn in insertion order: the i-th smallest id
# returned is the i-th job.
_INSERT_MANY = db.Query(
    "jobs.insert_many",
    f"""INSERT INTO {_T} (state, queue, worker, args, meta, tags, priority, max_attempts,
                          inserted_at, scheduled_at, unique_key)
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
               value ->> 6, value ->> 7, $2, value ->> 8, value ->> 9
        FROM json_each($1) ORDER BY key
        RETURNING id""",
)
_FIND_UNIQUE = db.Query(
    "jobs.find_unique",
    f"""SELECT {COLUMNS} FROM {_T}
        WHERE unique_key = $1 AND state IN (SELECT value FROM json_each($2))
              AND inserted_at >= $3
        ORDER BY id LIMIT 1""",
)
_FETCH = db.Query(
    "jobs.fetch",
    f"""UPDATE {_T}
        SET state = 'executing', attempt = attempt + 1, attempted_at = $3, attempted_by = $4
        WHERE id IN (SELECT id FROM {_T}
                     WHERE state = 'available' AND queue = $1
                     ORDER BY priority, scheduled_at, id
                     LIMIT $2)
        RETURNING {COLUMNS}""",
)
_COMPLETE = db.Query(
    "jobs.complete",
    f"""UPDATE {_T} SET state = 'completed', completed_at = $2
        WHERE id IN (SELECT value FROM json_each($1)) AND state = 'executing'
            AND attempted_by = $3""",
)
# $1: [[id, scheduled_at, error], ...]
_RETRYABLE = db.Query(
    "jobs.retryable",
    f"""UPDATE {_T}
        SET state = 'retryable', scheduled_at = u.value ->> 1,
            errors = json_insert({_T}.errors, '$[#]', json(u.value ->> 2))
        FROM json_each($1) AS u
        WHERE {_T}.id = u.value ->> 0 AND {_T}.state = 'executing'
            AND {_T}.attempted_by = $2""",
)
# $1: [[id, error], ...]
_DISCARD = db.Query(
    "jobs.discard",
    f"""UPDATE {_T}
        SET state = 'discarded', discarded_at = $2,
            errors = CASE WHEN NOT json_valid({_T}.errors) THEN json_array(json(u.value ->> 1))
                          WHEN json_type({_T}.errors) = 'array'
                          THEN json_insert({_T}.errors, '$[#]', json(u.value ->> 1))
                          ELSE json_array(json(u.value ->> 1)) END
        FROM json_each($1) AS u
        WHERE {_T}.id = u.value ->> 0 AND {_T}.state = 'executing'
            AND {_T}.attempted_by = $3""",
)
_CANCEL = db.Query(
    "jobs.cancelled",
    f"""UPDATE {_T}
        SET state = 'cancelled', cancelled_at = $2,
            errors = json_insert({_T}.errors, '$[#]', json(u.value ->> 1))
        FROM json_each($1) AS u
        WHERE {_T}.id = u.value ->> 0 AND {_T}.state = 'executing'
            AND {_T}.attempted_by = $3""",
)
# $1: [[id, scheduled_at], ...]
_SNOOZE = db.Query(
    "jobs.snooze",
    f"""UPDATE {_T}
        SET state = 'scheduled', scheduled_at = u.value ->> 1,
            attempt = CASE WHEN {_T}.attempt > 0 THEN {_T}.attempt - 1 ELSE 0 END
        FROM json_each($1) AS u
        WHERE {_T}.id = u.value ->> 0 AND {_T}.state = 'executing'
            AND {_T}.attempted_by = $2""",
)
_RELEASE = db.Query(
    "jobs.release",
    f"""UPDATE {_T}
        SET state = 'available', attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END
        WHERE id IN (SELECT value FROM json_each($1)) AND state = 'executing'
            AND attempted_by = $2""",
)
_BEAT = db.Query(
    "jobs.beat",
    f"""INSERT INTO {NODES_TABLE} (node, started_at, beat_at, queues) VALUES ($1, $2, $3, $4)
        ON CONFLICT (node) DO UPDATE
        SET started_at = excluded.started_at, beat_at = excluded.beat_at,
            queues = excluded.queues""",
)
# A node without a row counts from when it fetched the job: its row is written before its
# queues start, so only a job fetched before the cutoff can be a lost one's.
_RESCUE = db.Query(
    "jobs.rescue",
    f"""UPDATE {_T}
        SET state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'discarded' END,
            discarded_at = CASE WHEN attempt < max_attempts THEN discarded_at ELSE $3 END,
            errors = CASE WHEN json_valid(errors) AND json_type(errors) = 'array'
                          THEN json_insert(errors, '$[#]', json(<error>))
                          ELSE json_array(json(<error>)) END
        WHERE id IN (SELECT j.id FROM {_T} AS j INDEXED BY trunkline_jobs_executing
                     LEFT JOIN {NODES_TABLE} AS n ON n.node = j.attempted_by
                     WHERE j.state = 'executing'
                           AND ((j.attempted_by <> $2
                                 AND COALESCE(n.beat_at, j.attempted_at) < $1)
                                OR j.attempted_at < n.started_at)
                     ORDER BY j.id
                     LIMIT $6)
        RETURNING id, queue, state, attempted_by""".replace(
        "<error>",
        "json_object('attempt', attempt, 'at', $4, 'node', attempted_by, 'type', 'NodeLost', "
        "'message', 'node ' || quote(attempted_by) || $5, 'traceback', NULL)",
    ),
)
_PRUNE = db.Query(
    "jobs.prune",
    f"""DELETE FROM {_T}
        WHERE id IN (SELECT id FROM {_T} INDEXED BY trunkline_jobs_ended_at
                     WHERE state IN ('completed', 'discarded', 'cancelled')
                           AND COALESCE(completed_at, discarded_at, cancelled_at) < $1
                     LIMIT $2)""",
)
_STAGE = db.Query(
    "jobs.stage",
    f"""UPDATE {_T} SET state = 'available'
        WHERE id IN (SELECT id FROM {_T}
                     WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= $1
                     ORDER BY scheduled_at
                     LIMIT $2)
        RETURNING queue""",
)


class SQLiteEngine(Engine):
    """The engine for SQLite; see the module documentation."""

    dialect = "sqlite"
    fetch_statement = _FETCH
    beat_statement = _BEAT
    rescue_statement = _RESCUE
    prune_statement = _PRUNE
    signals_cross_processes = False

    async def insert(self, conn: Connection, rows: Sequence[Insert], now: datetime) -> list[int]:
        if len(rows) == 1:
            row = rows[0]
            job = row.job
            ids = [
                await conn.fetch_val(
                    _INSERT_ONE,
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
            ]
        else:
            payload = json.dumps(
                [
                    (
                        row.state,
                        row.job.queue,
                        row.job.worker,
                        row.job.args_json,
                        row.job.meta_json,
                        row.job.tags_json,
                        row.job.priority,
                        row.job.max_attempts,
                        _text(row.scheduled_at),
                        row.job.unique_key,
                    )
                    for row in rows
                ],
                separators=(",", ":"),
            )
            ids = sorted(row[0] for row in await conn.fetch(_INSERT_MANY, payload, now))
        await self.notify_queues(conn, _available_queues(rows))
        return ids

    async def lock_unique(self, tx: db.Transaction, key: str) -> None:
        pass  # the transaction holds the one writer already

    async def find_unique(
        self, tx: db.Transaction, key: str, states: Sequence[State], since: datetime
    ) -> db.Row | None:
        return await tx.fetch_one(_FIND_UNIQUE, key, json.dumps(list(states)), since)

    async def complete(
        self, database: db.Database, ids: Sequence[int], now: datetime, node: str
    ) -> None:
        await database.execute(_COMPLETE, json.dumps(list(ids)), now, node)

    async def retry(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        errors: Sequence[str],
        node: str,
    ) -> None:
        rows = [[i, _text(at), e] for i, at, e in zip(ids, scheduled_at, errors, strict=True)]
        await database.execute(_RETRYABLE, json.dumps(rows), node)

    async def discard(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        rows = [[i, e] for i, e in zip(ids, errors, strict=True)]
        await database.execute(_DISCARD, json.dumps(rows), now, node)

    async def cancel(
        self,
        database: db.Database,
        ids: Sequence[int],
        errors: Sequence[str],
        now: datetime,
        node: str,
    ) -> None:
        rows = [[i, e] for i, e in zip(ids, errors, strict=True)]
        await database.execute(_CANCEL, json.dumps(rows), now, node)

    async def snooze(
        self,
        database: db.Database,
        ids: Sequence[int],
        scheduled_at: Sequence[datetime],
        node: str,
    ) -> None:
        rows = [[i, _text(at)] for i, at in zip(ids, scheduled_at, strict=True)]
        await database.execute(_SNOOZE, json.dumps(rows), node)

    async def release(
        self, database: db.Database, queue: str, ids: Sequence[int], node: str
    ) -> None:
        if await database.execute(_RELEASE, json.dumps(list(ids)), node):
            await self.notify_queues(database, (queue,))

    async def stage(self, database: db.Database, now: datetime, limit: int) -> dict[str, int]:
        staged = Counter(row[0] for row in await database.fetch(_STAGE, now, limit))
        await self.notify_queues(database, sorted(staged))
        return dict(staged)


def _available_queues(rows: Sequence[Insert]) -> list[str]:
    return sorted({row.job.queue for row in rows if row.state == "available"})


def _text(moment: datetime) -> str:
    """A datetime as the SQLite driver stores one (``docs/database.md``): UTC, in SQLite's
    own ``YYYY-MM-DD HH:MM:SS[.ffffff]``. Rows written with it compare with parameters."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
