"""The stager: makes scheduled and retryable jobs available when they are due.

It wakes when the next job is due, or after ``stage_interval_s`` at most (jobs scheduled by
other nodes, or inserted for later, are found on that round), stages what is due in batches
and notifies the queues that got jobs, so their producers fetch them at once. A producer that
has just made jobs retryable or snoozed them tells it to look again (``"recheck"``), so
retries run on time, to the clock's precision, not to the interval's.

Every node runs one; on PostgreSQL concurrent stagers skip each other's rows. A database
failure is logged and the next round comes after a backoff.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .backoff import database_retry_s

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["STAGE_BATCH", "Stager"]

log = logging.getLogger("trunkline.jobs")

STAGE_BATCH = 5_000
"""Jobs staged per statement."""

_TICK = "tick"


class Stager(otp.GenServer):
    """See the module documentation."""

    def init(self, jobs: Jobs) -> otp.Continue:
        self.jobs = jobs
        self.timer: otp.TimerRef | None = None
        self.failures = 0
        return otp.Continue(_TICK)

    async def handle_continue(self, term: Any) -> None:
        await self._stage()

    async def handle_info(self, message: Any) -> None:
        if message == _TICK:
            self.timer = None
            await self._stage()
        else:
            log.warning("jobs stager received an unexpected message: %r", message)

    async def handle_cast(self, request: Any) -> None:
        if request == "recheck":
            await self._schedule()

    async def _stage(self) -> None:
        jobs = self.jobs
        clock = otp.current_node().clock
        total = 0
        try:
            while True:
                staged = sum(
                    (await jobs.engine.stage(jobs.database, clock.now(), STAGE_BATCH)).values()
                )
                total += staged
                if staged < STAGE_BATCH:
                    break
        except db.DatabaseError as error:
            self._failed(error)
            return
        self.failures = 0
        await self._schedule(staged_none=total == 0)

    async def _schedule(self, *, staged_none: bool = False) -> None:
        """Set the timer for the next due job, or the interval, whichever comes first.

        A job due already that the round just run did not stage (its ``scheduled_at`` a
        hair ahead of this node's clock, say) waits for the interval: never a busy loop.
        """
        jobs = self.jobs
        clock = otp.current_node().clock
        try:
            due = await jobs.engine.next_due(jobs.database)
        except db.DatabaseError as error:
            self._failed(error)
            return
        delay_s = jobs.stage_interval_s
        if due is not None:
            until_due_s = (due - clock.now()).total_seconds()
            if until_due_s > 0 or not staged_none:
                delay_s = max(0.0, min(delay_s, until_due_s))
        self._set_timer(delay_s)

    def _failed(self, error: db.DatabaseError) -> None:
        self.failures += 1
        delay_s = database_retry_s(self.failures)
        log.warning(
            "jobs stager: %s: %s; trying again in %.2fs", type(error).__name__, error, delay_s
        )
        self._set_timer(delay_s)

    def _set_timer(self, delay_s: float) -> None:
        if self.timer is not None:
            otp.cancel_timer(self.timer)
        self.timer = otp.send_after(delay_s, self.pid, _TICK)
