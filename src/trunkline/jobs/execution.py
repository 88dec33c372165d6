"""Running one job: its worker's ``perform``, the timeout, what came of it, telemetry.

:func:`execute` is the whole of an attempt but the database: it returns an :class:`Outcome`
that the queue's producer acknowledges in a batch (or, inline, the testing helpers at once).
It raises only when the process running it is being stopped (cancelled by ``cancel_job``,
or killed at the end of a graceful shutdown): then there is no outcome to record.

Telemetry: a span ``("trunkline", "jobs", "job", start | stop | exception)`` around each
attempt; see ``docs/jobs.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import traceback
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from trunkline.otp import current_node, telemetry

from . import backoff as _backoff
from .exceptions import JobTimeout, UnknownWorker
from .job import Job
from .results import Cancel, Discard, Snooze
from .worker import Worker

__all__ = [
    "JOB_EVENT",
    "Kind",
    "Outcome",
    "backoff_s",
    "error_entry",
    "execute",
    "quarantine",
]

log = logging.getLogger("trunkline.jobs")

JOB_EVENT = ("trunkline", "jobs", "job")
"""The prefix of the span around every attempt of a job."""

_EVENTS = tuple((*JOB_EVENT, end) for end in ("start", "stop", "exception"))

Kind: TypeAlias = Literal["completed", "retryable", "discarded", "cancelled", "snoozed"]
"""What came of an attempt. A snoozed job goes back to the ``scheduled`` state."""

_TRACEBACK_CHARS = 20_000  # the end of a traceback is what matters; keep rows bounded


class Outcome:
    """What came of one attempt, to be written to the job's row.

    Attributes:
        job: the job.
        kind: see :data:`Kind`.
        error: the error entry to append to the job's ``errors`` (JSON text), or ``None``.
        scheduled_at: when it runs again (``retryable``, ``snoozed``), or ``None``.
        result: what ``perform`` returned (kept in memory only, for telemetry and tests).
        exception: what the attempt raised, or ``None`` (in memory only).
    """

    __slots__ = ("error", "exception", "job", "kind", "result", "scheduled_at")

    def __init__(
        self,
        job: Job,
        kind: Kind,
        error: str | None = None,
        scheduled_at: datetime | None = None,
        result: Any = None,
        exception: Exception | None = None,
    ) -> None:
        self.job = job
        self.kind = kind
        self.error = error
        self.scheduled_at = scheduled_at
        self.result = result
        self.exception = exception

    def __repr__(self) -> str:
        return f"<Outcome job {self.job.id} {self.kind}>"


async def execute(job: Job, worker: Worker | None, node: str) -> Outcome:
    """Run one attempt of ``job`` with ``worker`` (``None``: not registered) on ``node``.

    Never raises for what the worker does: an exception, a timeout, an unknown worker are
    outcomes. Raises ``CancelledError`` (or ``ProcessExit``) when the process running it is
    stopped.
    """
    if not (
        telemetry.has_handlers(_EVENTS[0])
        or telemetry.has_handlers(_EVENTS[1])
        or telemetry.has_handlers(_EVENTS[2])
    ):
        return (await _attempt(job, worker, node))[0]
    clock = current_node().clock
    attempted_at = job.attempted_at or clock.now()
    queue_time = max(0.0, (attempted_at - job.scheduled_at).total_seconds())
    metadata = {
        "job": job,
        "id": job.id,
        "queue": job.queue,
        "worker": job.worker,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "tags": job.tags,
        "node": node,
    }
    outcome: Outcome | None = None
    failure: Exception | None = None
    try:
        async with telemetry.span(JOB_EVENT, metadata) as span:
            span.measure(queue_time=queue_time)
            span.set(state=None)  # if the process is stopped: nothing came of it
            outcome, failure = await _attempt(job, worker, node)
            span.set(state=outcome.kind, result=outcome.result)
            if failure is not None:
                raise failure  # for the span's exception event; caught below
    except Exception as error:
        if error is not failure:
            raise
    assert outcome is not None
    return outcome


async def _attempt(job: Job, worker: Worker | None, node: str) -> tuple[Outcome, Exception | None]:
    clock = current_node().clock
    if worker is None:
        error: Exception = UnknownWorker(
            f"no worker named {job.worker!r} is registered on node {node!r}: "
            "the job is discarded (retry it once a node runs that worker)"
        )
        entry = error_entry(job, error, node, clock.now())
        return Outcome(job, "discarded", entry, exception=error), error
    try:
        result = await _perform(worker, job)
    except Exception as error:
        now = clock.now()
        entry = error_entry(job, error, node, now)
        if job.attempt >= job.max_attempts:
            return Outcome(job, "discarded", entry, exception=error), error
        at = now + timedelta(seconds=backoff_s(worker, job))
        return Outcome(job, "retryable", entry, at, exception=error), error
    if type(result) is Snooze:
        return Outcome(job, "snoozed", None, clock.now() + timedelta(seconds=result.seconds)), None
    if type(result) is Discard:
        entry = _reason_entry(job, "Discard", result.reason, node, clock.now())
        return Outcome(job, "discarded", entry, result=result), None
    if type(result) is Cancel:
        entry = _reason_entry(job, "Cancel", result.reason, node, clock.now())
        return Outcome(job, "cancelled", entry, result=result), None
    return Outcome(job, "completed", result=result), None


async def _perform(worker: Worker, job: Job) -> Any:
    timeout_s = worker.timeout_s
    if timeout_s is None:
        return await _call(worker, job)
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            return await _call(worker, job)
    except TimeoutError:
        if not deadline.expired():
            raise  # the worker's own TimeoutError
        raise JobTimeout(
            f"job {job.id} ({job.worker}) ran past its timeout of {timeout_s:g}s and was cancelled"
        ) from None


async def _call(worker: Worker, job: Job) -> Any:
    if worker.is_async:
        return await worker.perform(job)
    return await asyncio.to_thread(worker.perform, job)


def backoff_s(worker: Worker | None, job: Job) -> float:
    """Seconds before the next attempt of ``job``: its worker's backoff (the default one
    when there is no worker, or when the worker's fails)."""
    if worker is None:
        return _backoff.exponential(job.attempt, job.max_attempts)
    try:
        delay_s = worker.backoff(job)
        if isinstance(delay_s, bool) or not isinstance(delay_s, int | float):
            raise TypeError(f"backoff returned {delay_s!r}, not seconds")
        if not math.isfinite(delay_s) or delay_s < 0:
            raise ValueError(f"backoff returned {delay_s!r}, not seconds >= 0")
    except Exception:
        log.exception(
            "worker %r: backoff failed for job %d; using the default backoff", worker.name, job.id
        )
        return _backoff.exponential(job.attempt, job.max_attempts)
    return float(delay_s)


def error_entry(job: Job, error: BaseException, node: str, at: datetime) -> str:
    """The entry a failed attempt appends to the job's ``errors``, as JSON text."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    try:
        message = str(error)
    except Exception as failure:  # an exception whose __str__ fails must not hide it
        message = f"<unprintable {name}: {failure!r}>"
    text = "".join(traceback.format_exception(error))
    if len(text) > _TRACEBACK_CHARS:
        text = "...\n" + text[-_TRACEBACK_CHARS:]
    return _entry(job, name, message, text, node, at)


def quarantine(row: Any, error: BaseException, node: str, now: datetime) -> Outcome:
    """The outcome of a row that cannot be read as a job: discarded, with ``error``."""
    # A stand-in for the error entry: the plain columns decoded, and they are all it needs.
    job = Job(
        id=row[0],
        worker=row[3],
        queue=row[2],
        args=None,
        state="executing",
        priority=row[8],
        attempt=row[9],
        max_attempts=row[10],
        meta={},
        tags=[],
        errors=[],
        inserted_at=row[11],
        scheduled_at=row[12],
    )
    return Outcome(job, "discarded", error_entry(job, error, node, now))


def _reason_entry(job: Job, name: str, reason: str, node: str, at: datetime) -> str:
    return _entry(job, name, str(reason), None, node, at)


def _entry(job: Job, name: str, message: str, text: str | None, node: str, at: datetime) -> str:
    return json.dumps(
        {
            "attempt": job.attempt,
            "at": at.isoformat(),
            "node": node,
            "type": name,
            "message": message,
            "traceback": text,
        }
    )
