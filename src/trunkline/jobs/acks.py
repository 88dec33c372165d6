"""Outcomes on their way to the database, in batches: one statement per kind of outcome.

Jobs taken ahead and given back unstarted (see ``producer.py``) travel the same way."""

from __future__ import annotations

from datetime import datetime

from trunkline import db

from .engine import Engine
from .execution import Outcome
from .job import Job

__all__ = ["Acks"]


class Acks:
    """Outcomes waiting to be written, by kind: one statement per kind that has some."""

    __slots__ = (
        "cancelled",
        "completed",
        "discarded",
        "node",
        "released",
        "retryable",
        "snoozed",
    )

    def __init__(self, node: str) -> None:
        self.node = node  # whose executions they end
        self.completed: list[int] = []
        self.retryable: list[Outcome] = []
        self.discarded: list[tuple[int, str]] = []
        self.cancelled: list[tuple[int, str]] = []
        self.snoozed: list[Outcome] = []
        self.released: dict[str, list[int]] = {}  # ids by queue

    def __bool__(self) -> bool:
        return bool(
            self.completed
            or self.retryable
            or self.discarded
            or self.cancelled
            or self.snoozed
            or self.released
        )

    def add(self, outcome: Outcome) -> None:
        kind = outcome.kind
        if kind == "completed":
            self.completed.append(outcome.job.id)
        elif kind == "retryable":
            self.retryable.append(outcome)
        elif kind == "discarded":
            assert outcome.error is not None
            self.discarded.append((outcome.job.id, outcome.error))
        elif kind == "cancelled":
            assert outcome.error is not None
            self.cancelled.append((outcome.job.id, outcome.error))
        else:
            self.snoozed.append(outcome)

    def release(self, jobs: list[Job]) -> None:
        """Give back ``jobs``, taken but never started: available again, attempt given back."""
        released = self.released
        for job in jobs:
            ids = released.get(job.queue)
            if ids is None:
                ids = released[job.queue] = []
            ids.append(job.id)

    async def write(self, engine: Engine, database: db.Database, now: datetime) -> bool:
        """Write them all; each kind is dropped once written. Whether any job will run
        again later (retryable, snoozed): the stager should look again.

        Raises:
            DatabaseError: a statement failed; what was not written is kept (writing it
                again is harmless: only executions still ``executing`` are ended).
        """
        later = False
        if self.completed:
            await engine.complete(database, self.completed, now, self.node)
            self.completed = []
        if self.retryable:
            outcomes = self.retryable
            await engine.retry(
                database,
                [o.job.id for o in outcomes],
                [o.scheduled_at for o in outcomes],  # type: ignore[misc]
                [o.error for o in outcomes],  # type: ignore[misc]
                self.node,
            )
            self.retryable = []
            later = True
        if self.discarded:
            await engine.discard(
                database,
                [i for i, _ in self.discarded],
                [e for _, e in self.discarded],
                now,
                self.node,
            )
            self.discarded = []
        if self.cancelled:
            await engine.cancel(
                database,
                [i for i, _ in self.cancelled],
                [e for _, e in self.cancelled],
                now,
                self.node,
            )
            self.cancelled = []
        if self.snoozed:
            outcomes = self.snoozed
            await engine.snooze(
                database,
                [o.job.id for o in outcomes],
                [o.scheduled_at for o in outcomes],  # type: ignore[misc]
                self.node,
            )
            self.snoozed = []
            later = True
        while self.released:
            queue, ids = next(iter(self.released.items()))
            await engine.release(database, queue, ids, self.node)
            del self.released[queue]
        return later
