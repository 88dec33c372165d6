"""Helpers for testing code that enqueues and runs jobs, with no queue processes running.

- :func:`drain` runs the jobs of a queue inline, one after the other, until none is
  available, and counts what came of them: a test enqueues, drains, and asserts on the
  effects.
- :func:`assert_enqueued`, :func:`refute_enqueued` and :func:`all_enqueued` look at what is
  waiting to run.

Example::

    async def test_signing_up_sends_a_welcome(database):
        await sign_up(database, "ada@example.com")
        await assert_enqueued(database, worker=send_welcome, args={"to": "ada@example.com"})
        result = await drain(database, "mail", registry=registry)
        assert result.completed == 1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trunkline import db, otp

from .acks import Acks
from .engine import engine_for
from .exceptions import InvalidJob, MalformedJob
from .execution import execute, quarantine
from .inspection import list_jobs
from .job import Job, State
from .registry import WorkerRegistry
from .worker import Worker

__all__ = ["DrainResult", "all_enqueued", "assert_enqueued", "drain", "refute_enqueued"]

_WAITING: tuple[State, ...] = ("available", "scheduled")
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_BATCH = 100


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What came of the jobs :func:`drain` ran, by outcome."""

    completed: int = 0
    retryable: int = 0
    discarded: int = 0
    cancelled: int = 0
    snoozed: int = 0

    @property
    def total(self) -> int:
        """How many attempts ran."""
        return self.completed + self.retryable + self.discarded + self.cancelled + self.snoozed


async def drain(
    database: db.Database,
    queue: str,
    *,
    registry: WorkerRegistry,
    with_scheduled: bool = False,
    raise_errors: bool = False,
    node: str = "drain",
    max_runs: int = 10_000,
) -> DrainResult:
    """Run the available jobs of ``queue`` inline, in queue order, until there are none;
    jobs they enqueue in the queue run too. Each outcome is written at once, as a queue
    would.

    Args:
        database: the jobs' database.
        queue: the queue to drain.
        registry: the workers.
        with_scheduled: also run, at once, jobs scheduled for later and jobs waiting for a
            retry (so a failing job runs until discarded).
        raise_errors: raise the first exception a job raises (after writing its outcome),
            to see it in the test.
        node: the node name recorded on the jobs.
        max_runs: the most attempts it runs: a job that snoozes for ever (or, with
            ``with_scheduled``, one that enqueues itself again) would never let it end.

    Returns:
        How many attempts were completed, retryable, discarded, cancelled and snoozed.

    Raises:
        RuntimeError: more than ``max_runs`` attempts would run (the jobs fetched are put
            back first).
    """
    engine = engine_for(database)
    clock = otp.current_node().clock
    counts = dict.fromkeys(("completed", "retryable", "discarded", "cancelled", "snoozed"), 0)
    acks = Acks(node)
    while True:
        if with_scheduled:
            await engine.stage(database, _FAR_FUTURE, 1_000_000)
        rows = await engine.fetch(database, queue, _BATCH, node, clock.now())
        if not rows:
            break
        if sum(counts.values()) + len(rows) > max_runs:
            await engine.put_back(database, queue, node)
            raise RuntimeError(
                f"drain({queue!r}) ran {max_runs} attempts and jobs are still there: a job "
                "that snoozes or enqueues itself for ever?"
            )
        for row in rows:
            try:
                job = Job.from_row(row)
            except MalformedJob as error:
                outcome = quarantine(row, error, node, clock.now())
            else:
                outcome = await execute(job, registry.get(job.worker), node)
            counts[outcome.kind] += 1
            acks.add(outcome)
            await acks.write(engine, database, clock.now())
            if raise_errors and outcome.exception is not None:
                raise outcome.exception
    return DrainResult(**counts)


async def all_enqueued(
    database: db.Database | db.Transaction,
    *,
    worker: Worker | str | None = None,
    queue: str | None = None,
    args: Any = None,
    states: tuple[State, ...] = _WAITING,
) -> list[Job]:
    """The jobs waiting to run (available or scheduled, unless ``states`` say otherwise)
    that match: of ``worker``, in ``queue``, with ``args`` (a dict matches arguments that
    contain its items; anything else must be equal). Newest first."""
    name = _name(worker)
    found = []
    for state in states:
        for job in await list_jobs(database, state=state, queue=queue, worker=name, limit=10_000):
            if args is None or _matches(job.args, args):
                found.append(job)
    found.sort(key=lambda job: job.id, reverse=True)
    return found


async def assert_enqueued(
    database: db.Database | db.Transaction,
    *,
    worker: Worker | str | None = None,
    queue: str | None = None,
    args: Any = None,
    states: tuple[State, ...] = _WAITING,
) -> Job:
    """Assert that a matching job waits to run (see :func:`all_enqueued`); return the newest.

    Raises:
        AssertionError: none does; the message lists what waits for that worker or queue.
    """
    found = await all_enqueued(database, worker=worker, queue=queue, args=args, states=states)
    if found:
        return found[0]
    nearby = await all_enqueued(database, worker=worker, queue=queue, states=states)
    listing = "\n".join(
        f"  {job.id}: {job.worker} in {job.queue!r} {job.args!r}" for job in nearby[:20]
    )
    raise AssertionError(
        f"expected a job {_describe(worker, queue, args)} in {', '.join(states)}; "
        + (f"found only:\n{listing}" if listing else "found none")
    )


async def refute_enqueued(
    database: db.Database | db.Transaction,
    *,
    worker: Worker | str | None = None,
    queue: str | None = None,
    args: Any = None,
    states: tuple[State, ...] = _WAITING,
) -> None:
    """Assert that no matching job waits to run (see :func:`all_enqueued`).

    Raises:
        AssertionError: one does; the message names it.
    """
    found = await all_enqueued(database, worker=worker, queue=queue, args=args, states=states)
    if found:
        job = found[0]
        raise AssertionError(
            f"expected no job {_describe(worker, queue, args)}, found {job.id}: {job.worker} in "
            f"{job.queue!r} {job.args!r} ({job.state})"
        )


def _name(worker: Worker | str | None) -> str | None:
    if worker is None or isinstance(worker, str):
        return worker
    if isinstance(worker, Worker):
        return worker.name
    raise InvalidJob(f"worker must be a Worker or a worker's name, not {worker!r}")


def _matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and actual[key] == value for key, value in expected.items()
        )
    return bool(actual == expected)


def _describe(worker: Worker | str | None, queue: str | None, args: Any) -> str:
    parts = []
    if worker is not None:
        parts.append(f"of {_name(worker)!r}")
    if queue is not None:
        parts.append(f"in {queue!r}")
    if args is not None:
        parts.append(f"with args {args!r}")
    return " ".join(parts) or "at all"
