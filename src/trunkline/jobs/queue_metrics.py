"""Queue metrics: how deep each queue is and how fast this node gets through it.

Every ``metrics_interval_s``, when a handler is attached to :data:`QUEUE_EVENT` (and only
then: counting jobs is a statement over the table), it emits the event once per queue that
this node runs, with measurements:

- the jobs of the queue in each state, on every node: ``available``, ``scheduled``,
  ``executing``, ``retryable``, ``completed``, ``discarded``, ``cancelled`` (0 when none);
- ``running``, ``held`` (taken ahead, waiting for a slot) and ``limit``: the queue on this
  node, now;
- the attempts this node ended since the last round, per second: ``ended_per_s``, and by
  outcome ``completed_per_s``, ``retryable_per_s``, ``discarded_per_s``,
  ``cancelled_per_s``, ``snoozed_per_s``;

and metadata ``queue``, ``node``, ``paused``. The producers count the outcomes they are
handed (:class:`OutcomeCounts`, a dictionary increment per job), whether or not anyone
listens. A database failure is logged and the round skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .exceptions import QueueNotRunning
from .execution import Outcome
from .job import STATES

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["OUTCOMES", "QUEUE_EVENT", "OutcomeCounts", "QueueMetrics"]

log = logging.getLogger("trunkline.jobs")

QUEUE_EVENT = ("trunkline", "jobs", "queue", "stats")
"""Emitted per queue every ``metrics_interval_s`` while a handler is attached to it."""

OUTCOMES = ("completed", "retryable", "discarded", "cancelled", "snoozed")
"""What an attempt comes to, as counted for the rates."""

_TICK = "tick"


class OutcomeCounts:
    """The attempts this node's queues ended, by queue and outcome, since the node started."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def add(self, queue: str, outcomes: Iterable[Outcome]) -> None:
        """Count ``outcomes`` of ``queue``."""
        counts = self.counts.get(queue)
        if counts is None:
            counts = self.counts[queue] = Counter()
        for outcome in outcomes:
            counts[outcome.kind] += 1

    def of(self, queue: str) -> Counter[str]:
        """A copy of the counts of ``queue``."""
        return Counter(self.counts.get(queue, ()))


class QueueMetrics(otp.GenServer):
    """See the module documentation."""

    def init(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.last_at = otp.current_node().clock.monotonic()
        self.last = {name: jobs.outcomes.of(name) for name in jobs.queues}
        otp.send_after(jobs.metrics_interval_s, self.pid, _TICK)

    async def handle_info(self, message: Any) -> None:
        if message == _TICK:
            await self._report()
            otp.send_after(self.jobs.metrics_interval_s, self.pid, _TICK)
        else:
            log.warning("jobs queue metrics received an unexpected message: %r", message)

    async def _report(self) -> None:
        jobs = self.jobs
        now = otp.current_node().clock.monotonic()
        elapsed_s = max(now - self.last_at, 1e-9)
        current = {name: jobs.outcomes.of(name) for name in jobs.queues}
        rates = {name: _rates(current[name] - self.last[name], elapsed_s) for name in current}
        self.last_at, self.last = now, current
        if not jobs.queues or not otp.telemetry.has_handlers(QUEUE_EVENT):
            return
        try:
            stats = await jobs.engine.stats(jobs.database)
        except db.DatabaseError as error:
            log.warning("jobs queue metrics: %s: %s", type(error).__name__, error)
            return
        for name in jobs.queues:
            try:
                info = await jobs.queue_info(name)
            except (QueueNotRunning, otp.CallError):
                continue  # its tree is restarting: no running count to give
            counts = stats.get(name, {})
            measurements: dict[str, float] = {state: counts.get(state, 0) for state in STATES}
            otp.telemetry.execute(
                QUEUE_EVENT,
                {
                    **measurements,
                    "running": info.running,
                    "held": info.held,
                    "limit": info.limit,
                    **rates[name],
                },
                {"queue": name, "node": jobs.node, "paused": info.paused},
            )


def _rates(counts: Counter[str], elapsed_s: float) -> dict[str, float]:
    rates = {f"{kind}_per_s": counts[kind] / elapsed_s for kind in OUTCOMES}
    rates["ended_per_s"] = sum(counts[kind] for kind in OUTCOMES) / elapsed_s
    return rates
