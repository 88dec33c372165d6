"""The pruner: deletes ended jobs once they are old, and the rows of long-gone nodes.

Every ``prune_interval_s`` it deletes the ``completed``, ``discarded`` and ``cancelled``
jobs that ended (``completed_at``, ``discarded_at``, ``cancelled_at``) more than
``prune_after_s`` ago, :data:`PRUNE_BATCH` per statement until a statement deletes fewer:
short statements, so it never holds many rows at once, and a large backlog goes in one
round. It reads the ``trunkline_jobs_ended_at`` index (ended jobs by when they ended): the
old ones only, however many jobs wait or run. Then it deletes the rows of nodes that have
not beaten for :data:`NODE_ROWS_KEPT_S` and left no job executing (nodes that died, whose
jobs the lifeline rescued).

Every node runs one (``prune_after_s=None`` turns it off); on PostgreSQL concurrent
pruners skip each other's rows. A database failure is logged and the next round comes
after a backoff: it never crashes for it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .backoff import database_retry_s

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["NODE_ROWS_KEPT_S", "PRUNE_BATCH", "Pruner"]

log = logging.getLogger("trunkline.jobs")

PRUNE_BATCH = 10_000
"""Jobs deleted per statement."""

NODE_ROWS_KEPT_S = 86_400.0
"""How long the row of a node that stopped beating is kept: a day."""

_PRUNE = "prune"


class Pruner(otp.GenServer):
    """See the module documentation."""

    def init(self, jobs: Jobs) -> None:
        assert jobs.prune_after_s is not None
        self.jobs = jobs
        self.prune_after_s: float = jobs.prune_after_s
        self.failures = 0
        otp.send_after(jobs.prune_interval_s, self.pid, _PRUNE)

    async def handle_info(self, message: Any) -> None:
        if message == _PRUNE:
            await self._prune()
        else:
            log.warning("jobs pruner received an unexpected message: %r", message)

    async def _prune(self) -> None:
        jobs = self.jobs
        clock = otp.current_node().clock
        try:
            total = 0
            while True:
                cutoff = clock.now() - timedelta(seconds=self.prune_after_s)
                deleted = await jobs.engine.prune(jobs.database, cutoff, PRUNE_BATCH)
                total += deleted
                if deleted < PRUNE_BATCH:
                    break
            nodes = await jobs.engine.prune_nodes(
                jobs.database, clock.now() - timedelta(seconds=NODE_ROWS_KEPT_S)
            )
        except db.DatabaseError as error:
            self.failures += 1
            delay_s = database_retry_s(self.failures)
            log.warning(
                "jobs pruner: %s: %s; trying again in %.2fs", type(error).__name__, error, delay_s
            )
        else:
            self.failures = 0
            delay_s = jobs.prune_interval_s
            if total or nodes:
                log.info("jobs pruner: deleted %d ended jobs and %d node rows", total, nodes)
        otp.send_after(delay_s, self.pid, _PRUNE)
