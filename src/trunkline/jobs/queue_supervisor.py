"""The supervision tree of one queue on one node, ``one_for_all``::

    QueueSupervisor
    ├── Producer    a producer stage: fetches jobs up to the executor's free slots, and
    │               acknowledges outcomes in batches
    ├── Executor    a consumer stage: one process per job, at most ``limit`` at once
    └── Watchman    on shutdown, first: stops fetching and waits for running jobs

Stopping goes newest first: the watchman gives running jobs the grace period, the executor
stops what still runs, and the producer, last, records the outcomes that came in and puts
back the jobs that were stopped. When any of them crashes, all three restart, and the new
producer puts back what the old tree left executing.
"""

from __future__ import annotations

from trunkline import otp

from .executor import Executor
from .producer import Producer
from .queue import Queue
from .watchman import Watchman

__all__ = ["QueueSupervisor"]


class QueueSupervisor(otp.Supervisor):
    """The supervision tree of one queue; see the module documentation."""

    def init(self, queue: Queue) -> otp.SupervisorSpec:
        grace_s = queue.jobs.shutdown_grace_s
        return otp.SupervisorSpec(
            [
                otp.child_spec(
                    Producer, queue, id="producer", name=queue.name_of("producer"), shutdown=30.0
                ),
                otp.child_spec(Executor, queue, id="executor", name=queue.name_of("executor")),
                # Its terminate waits for the running jobs: give it the grace period, and more.
                otp.child_spec(Watchman, queue, id="watchman", shutdown=grace_s + 5.0),
            ],
            strategy="one_for_all",
        )
