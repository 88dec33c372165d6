"""Enqueueing: one job, or many in one statement; now, later, or at a time; alone or in the
caller's transaction; unique or not.

Pass a :class:`~trunkline.db.Database` to commit the jobs on their own, or a
:class:`~trunkline.db.Transaction` to make them part of the caller's work: they exist (and
wake the queues) only if it commits::

    async with database.transaction() as tx:
        order = await tx.fetch_val("INSERT INTO orders ... RETURNING id", ...)
        await enqueue(tx, send_receipt, {"order": order})

Available jobs notify their queue, so an idle producer fetches them at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from trunkline import db, otp

from .engine import EPOCH, Connection, Engine, Insert, engine_for
from .exceptions import InvalidJob
from .job import Job
from .new_job import NewJob, new_job
from .worker import Worker

__all__ = ["enqueue", "enqueue_many"]


async def enqueue(
    conn: Connection, worker: Worker | str | NewJob, args: Any = None, **options: Any
) -> Job:
    """Insert one job; return it as stored.

    Args:
        conn: the database, or a transaction of the caller's.
        worker: a :class:`~trunkline.jobs.Worker` (its defaults apply), a worker's name
            (see :func:`~trunkline.jobs.new_job` for the defaults), or a
            :class:`~trunkline.jobs.NewJob` made beforehand (then give nothing else).
        args: the job's arguments: JSON.
        options: ``queue``, ``priority``, ``max_attempts``, ``scheduled_at``, ``in_s``,
            ``meta``, ``tags``, ``unique``: see :func:`~trunkline.jobs.new_job`.

    Returns:
        The job. For a unique job that has a duplicate, the duplicate, with
        ``conflict=True``, and nothing is inserted.

    Raises:
        InvalidJob: the arguments are not JSON, or an option is invalid (nothing written).
        DatabaseError: the insert failed (``trunkline.db``'s errors).

    Example::

        job = await enqueue(database, send_welcome, {"to": "ada@example.com"}, in_s=60)
    """
    if isinstance(worker, NewJob):
        if args is not None or options:
            raise InvalidJob("enqueue takes a NewJob alone: its arguments and options are in it")
        job = worker
    elif isinstance(worker, Worker):
        job = worker.new(args, **options)
    elif isinstance(worker, str):
        job = new_job(worker, args, **options)
    else:
        raise InvalidJob(f"enqueue needs a Worker, a worker's name or a NewJob, not {worker!r}")
    [stored] = await _insert(conn, [job])
    return stored


async def enqueue_many(conn: Connection, jobs: Iterable[NewJob]) -> list[Job]:
    """Insert many jobs, in one statement (unique ones apart: see below); return them as
    stored, in order.

    Jobs that are not unique go in one statement, whatever their number. Unique jobs are
    inserted one by one after them, in the same transaction (the caller's, or one of
    their own), each checked for its duplicate.

    Args:
        conn: the database, or a transaction of the caller's.
        jobs: made with :meth:`Worker.new <trunkline.jobs.Worker.new>` or
            :func:`~trunkline.jobs.new_job`.

    Raises:
        InvalidJob: something in ``jobs`` is not a :class:`~trunkline.jobs.NewJob`.
        DatabaseError: the insert failed; nothing was inserted.

    Example::

        await enqueue_many(database, [resize.new({"key": key}) for key in keys])
    """
    batch = list(jobs)
    for job in batch:
        if not isinstance(job, NewJob):
            raise InvalidJob(f"enqueue_many takes NewJob objects (worker.new(...)), not {job!r}")
    if not batch:
        return []
    return await _insert(conn, batch)


async def _insert(conn: Connection, jobs: Sequence[NewJob]) -> list[Job]:
    engine = engine_for(conn)
    now = otp.current_node().clock.now()
    rows = [_row(job, now) for job in jobs]
    plain = [i for i, job in enumerate(jobs) if job.unique is None]
    if len(plain) == len(rows):
        ids = await engine.insert(conn, rows, now)
        return [_stored(row, job_id, now) for row, job_id in zip(rows, ids, strict=True)]
    stored: list[Job | None] = [None] * len(rows)
    async with _transaction(conn) as tx:
        if plain:
            ids = await engine.insert(tx, [rows[i] for i in plain], now)
            for i, job_id in zip(plain, ids, strict=True):
                stored[i] = _stored(rows[i], job_id, now)
        # Every key is locked before any is looked up, in one order: two batches sharing
        # keys in different orders (on two nodes, say) would otherwise each hold a key the
        # other waits for, a deadlock that PostgreSQL ends by failing one of them.
        for key in sorted({row.job.unique_key for row in rows if row.job.unique_key}):
            await engine.lock_unique(tx, key)
        for i, row in enumerate(rows):
            if stored[i] is None:
                stored[i] = await _insert_unique(engine, tx, row, now)
    return stored  # type: ignore[return-value]  # every slot is filled


async def _insert_unique(engine: Engine, tx: db.Transaction, row: Insert, now: datetime) -> Job:
    """Insert a unique job whose key the transaction has locked, unless it has a duplicate."""
    job = row.job
    unique, key = job.unique, job.unique_key
    assert unique is not None
    assert key is not None
    since = EPOCH if unique.period_s is None else now - timedelta(seconds=unique.period_s)
    existing = await engine.find_unique(tx, key, unique.states, since)
    if existing is not None:
        return Job.from_row(existing, conflict=True)
    [job_id] = await engine.insert(tx, [row], now)
    return _stored(row, job_id, now)


def _row(job: NewJob, now: datetime) -> Insert:
    if job.scheduled_at is not None:
        at = job.scheduled_at
    elif job.in_s:
        at = now + timedelta(seconds=job.in_s)
    else:
        return Insert(job, "available", now)
    return Insert(job, "scheduled" if at > now else "available", at)


def _stored(row: Insert, job_id: int, now: datetime) -> Job:
    job = row.job
    return Job(
        id=job_id,
        worker=job.worker,
        queue=job.queue,
        args=job.args,
        state=row.state,
        priority=job.priority,
        attempt=0,
        max_attempts=job.max_attempts,
        meta=dict(job.meta),
        tags=list(job.tags),
        errors=[],
        inserted_at=now,
        scheduled_at=row.scheduled_at,
        unique_key=job.unique_key,
    )


@asynccontextmanager
async def _transaction(conn: Connection) -> AsyncIterator[db.Transaction]:
    if isinstance(conn, db.Transaction):
        yield conn
    else:
        async with conn.transaction() as tx:
            yield tx
