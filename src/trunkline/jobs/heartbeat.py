"""The heartbeat: this node's row among the running nodes, ``trunkline_job_nodes``.

Every node writes its row (node, ``started_at``, ``beat_at``, the queues it runs with their
limits) when it starts, before its queues fetch anything, then every
``heartbeat_interval_s``; times come from the node's clock. The lifelines of every node read
the rows: a node whose row has not beaten for ``rescue_after_s`` is lost, and the jobs it
left executing are rescued (``lifeline.py``).

Stopped gracefully, it deletes its row. It stops after the queues (it starts before them),
which have put their jobs back by then: a node that stopped leaves nothing to rescue, and
no row behind. A node that dies leaves its row, stale: that is what the lifelines look for.
A node that dies and comes back under the same name (a fixed ``node=``) writes a newer
``started_at``: the jobs its name fetched before that are the dead run's, and are rescued
like a lost node's (their attempt counted), while its own producers put back only what this
run fetched.

A database failure is logged and the next beat comes after a backoff (0.1 s doubling, never
later than the interval): it never crashes for it, so an outage costs no restart intensity.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .backoff import database_retry_s

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["Heartbeat"]

log = logging.getLogger("trunkline.jobs")

_BEAT = "beat"


class Heartbeat(otp.GenServer):
    """See the module documentation."""

    trap_exit = True  # so that a graceful stop deletes the row

    async def init(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.failures = 0
        # The first beat before init returns, so before the queues start: the row exists
        # before the node fetches a job. If the database is down the node starts anyway
        # and beats when it is back (its queues cannot fetch meanwhile either).
        await self._beat()

    async def handle_info(self, message: Any) -> None:
        if message == _BEAT:
            await self._beat()
        elif type(message) is otp.Exit:
            pass  # trapped only to delete the row when stopped; a linked process's exit
        else:
            log.warning("jobs heartbeat received an unexpected message: %r", message)

    async def _beat(self) -> None:
        jobs = self.jobs
        queues = json.dumps(
            {q.name: {"limit": q.limit, "paused": q.paused} for q in jobs.queues.values()},
            separators=(",", ":"),
        )
        delay_s = jobs.heartbeat_interval_s
        try:
            await jobs.engine.beat(
                jobs.database, jobs.node, jobs.started_at, otp.current_node().clock.now(), queues
            )
        except db.DatabaseError as error:
            self.failures += 1
            delay_s = min(delay_s, database_retry_s(self.failures))
            log.warning(
                "jobs heartbeat of node %r: %s: %s; trying again in %.2fs",
                jobs.node,
                type(error).__name__,
                error,
                delay_s,
            )
        else:
            self.failures = 0
        otp.send_after(delay_s, self.pid, _BEAT)

    async def terminate(self, reason: Any) -> None:
        if not otp.is_normal_exit(reason):
            return  # a crash: the queues may still run; the restarted heartbeat beats again
        jobs = self.jobs
        try:
            await jobs.engine.forget_node(jobs.database, jobs.node)
        except db.DatabaseError as error:
            log.warning(
                "jobs heartbeat: could not delete the row of node %r (%s); the pruner will",
                jobs.node,
                error,
            )
