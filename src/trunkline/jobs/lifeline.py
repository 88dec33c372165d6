"""The lifeline: rescues the jobs that a lost node left executing.

A node that dies (SIGKILL, power, a network it never comes back from) cannot put its jobs
back: they stay ``executing`` under its name. Every node's heartbeat (``heartbeat.py``)
writes its row of ``trunkline_job_nodes``; every ``rescue_after_s / 2`` the lifeline takes,
in one statement per batch, the executing jobs of nodes that are lost:

- whose row has not beaten for ``rescue_after_s``, or
- that have no row, for jobs fetched more than ``rescue_after_s`` ago (a row is written
  before a node's queues start, so a younger job may be a starting node's),

and never this node's own jobs. Each becomes ``available`` again if it has attempts left,
else ``discarded``. The attempt stays counted (it was raised when the job was fetched: a
job that kills its node is not retried for ever), and an error entry is appended like any
failed attempt's: type ``"NodeLost"``, the message naming the lost node and this one. The
queues that got jobs are notified, so idle producers on any node take them at once.

Several nodes' lifelines may run at once: on PostgreSQL each takes its batch ``FOR UPDATE
SKIP LOCKED`` and the update checks the job still executes, so a job is rescued once; on
SQLite the one writer does the same. A database failure is logged and the next round comes
after a backoff: it never crashes for it.

A rescued job may still be running on a node that was only cut off (a network partition
longer than ``rescue_after_s``): it may then run twice, as at-least-once allows.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .backoff import database_retry_s

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["NODE_LOST", "RESCUE_BATCH", "Lifeline"]

log = logging.getLogger("trunkline.jobs")

NODE_LOST = "NodeLost"
"""The ``type`` of the error entry of a rescued job's attempt."""

RESCUE_BATCH = 1_000
"""Jobs rescued per statement."""

_RESCUE = "rescue"


class Lifeline(otp.GenServer):
    """See the module documentation."""

    def init(self, jobs: Jobs) -> otp.Continue:
        self.jobs = jobs
        self.failures = 0
        return otp.Continue(_RESCUE)  # at once: a node starting may be the first to look

    async def handle_continue(self, term: Any) -> None:
        await self._rescue()

    async def handle_info(self, message: Any) -> None:
        if message == _RESCUE:
            await self._rescue()
        else:
            log.warning("jobs lifeline received an unexpected message: %r", message)

    async def _rescue(self) -> None:
        jobs = self.jobs
        clock = otp.current_node().clock
        message = (
            f" is lost: its heartbeat stopped for {jobs.rescue_after_s:g}s; "
            f"the job was rescued by node {jobs.node!r}"
        )
        rescued: list[db.Row] = []
        try:
            while True:
                now = clock.now()
                rows = await jobs.engine.rescue(
                    jobs.database,
                    now - timedelta(seconds=jobs.rescue_after_s),
                    jobs.node,
                    now,
                    message,
                    RESCUE_BATCH,
                )
                rescued += rows
                if len(rows) < RESCUE_BATCH:
                    break
        except db.DatabaseError as error:
            self.failures += 1
            delay_s = database_retry_s(self.failures)
            log.warning(
                "jobs lifeline: %s: %s; trying again in %.2fs", type(error).__name__, error, delay_s
            )
        else:
            self.failures = 0
            delay_s = jobs.rescue_after_s / 2
        if rescued:
            by_node = Counter((row[3], row[2]) for row in rescued)
            for (lost, state), count in sorted(by_node.items()):
                log.warning(
                    "jobs lifeline: node %r is lost; %d of its executing jobs are now %s",
                    lost,
                    count,
                    state,
                )
        otp.send_after(delay_s, self.pid, _RESCUE)
