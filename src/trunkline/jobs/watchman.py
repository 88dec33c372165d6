"""The watchman of a queue: the first of its processes to stop, it gives running jobs their
grace period.

It does nothing while the queue runs. On shutdown (it traps exits, so its ``terminate``
runs) it asks the producer to stop fetching and waits - up to the node's
``shutdown_grace_s`` - until no job of the queue runs. Then its supervisor stops the executor,
which stops the jobs still running, and the producer, which puts them back.
"""

from __future__ import annotations

import logging
from typing import Any

from trunkline import otp

from .queue import Queue

__all__ = ["Watchman"]

log = logging.getLogger("trunkline.jobs")


class Watchman(otp.GenServer):
    """See the module documentation."""

    trap_exit = True

    def init(self, queue: Queue) -> None:
        self.queue = queue

    async def terminate(self, reason: Any) -> None:
        queue = self.queue
        producer = otp.resolve(queue.name_of("producer"))
        if producer is None:
            return  # the producer crashed: its jobs' outcomes could not be recorded anyway
        grace_s = queue.jobs.shutdown_grace_s
        try:
            await otp.call(producer, "drain", timeout=grace_s)
        except otp.CallTimeout:
            log.warning(
                "queue %r: jobs still running after the %gs grace period are stopped and put back",
                queue.name,
                grace_s,
            )
        except otp.CallError:
            pass  # the producer went meanwhile
