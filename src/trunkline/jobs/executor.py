"""The executor of a queue: a consumer stage that runs each job in a process of its own.

Each job gets a process, linked to the executor (which traps exits) and registered in the
node's registry of running jobs under the job's id, so that ``cancel_job`` finds it. The
process runs the attempt (:func:`~trunkline.jobs.execution.execute`) and sends the outcome
to the executor, which passes the outcomes of a burst of endings to the producer in one
message, just before asking for as many new jobs; the producer writes them in batches. A
failing job is an outcome, not a crash: the process ends normally.

When a job's process ends otherwise - killed by an exit signal from a process it linked to,
or exiting itself (``ProcessExit``), or crashing in a way ``execute`` could not catch - the
executor records a failed attempt for it, with the exit reason, so that no job stays
``executing`` behind a dead process; ``cancel_job``'s exit (:data:`CANCELLED`) excepted, as
that job is cancelled already. The executor itself never crashes for a job.

Demand is manual: the executor asks for :data:`~trunkline.jobs.queue.MAX_LIMIT` jobs when it
subscribes, and for one more per job that ends (the asks of a burst of endings go as one,
after the burst's outcomes). The producer, which knows the queue's limit, sends no more than
it allows, plus the few it takes ahead while the queue is busy (see ``producer.py``). The
executor runs up to the limit and holds the rest, in order: a slot that comes free starts
the next held job at once, as the previous one's exit is handled, without a round trip to
the database. Held jobs are given back (available again, their attempt returned) when the
queue pauses or drains, and dropped when cancelled.

When the executor stops, the jobs still running are killed (the grace period came before,
from the queue's watchman), and the producer puts them back.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from trunkline import otp
from trunkline.otp.stage import Cancellation, ConsumerInit, Stage, Subscription, ask

from .exceptions import JobExited
from .execution import Outcome, backoff_s, error_entry, execute
from .job import Job
from .queue import MAX_LIMIT, Queue

__all__ = ["CANCELLED", "RELEASE", "START", "Drop", "Executor", "Finished"]

log = logging.getLogger("trunkline.jobs")

CANCELLED = ("shutdown", "cancelled")
"""The exit reason of a job process stopped by ``cancel_job``: a normal exit, no crash report."""

RELEASE = "release"
"""To the executor: give back the jobs it holds (the queue pauses or drains)."""
START = "start"
"""To the executor: the limit changed, start the held jobs it now allows."""
_REPORT = "report"


class Executor(Stage):
    """A queue's executor stage; see the module documentation."""

    trap_exit = True

    queue: Queue
    jobs: dict[otp.Pid, Job]  # running, by process
    held: deque[Job]  # received, waiting for a free slot
    subscription: Subscription | None
    outcomes: list[Outcome]  # of jobs that ended, not sent to the producer yet
    released: list[Job]  # held jobs given back, not sent to the producer yet
    freed: int  # slots freed (and held jobs let go) not asked for yet

    def init(self, queue: Queue) -> ConsumerInit:
        self.queue = queue
        self.jobs = {}
        self.held = deque()
        self.subscription = None
        self.outcomes = []
        self.released = []
        self.freed = 0
        queue.held = 0
        producer = queue.name_of("producer")
        return ConsumerInit(subscribe_to=[(producer, {"max_demand": MAX_LIMIT, "min_demand": 0})])

    def handle_subscribe(
        self, kind: str, options: Mapping[str, Any], subscription: Subscription
    ) -> str:
        self.subscription = subscription
        ask(subscription, options["max_demand"])
        return "manual"

    def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> None:
        self.subscription = None  # the producer is gone: we stop too (permanent subscription)

    def handle_events(self, events: list[Job], from_: Subscription) -> None:
        self.held.extend(events)
        self._start()

    def _start(self) -> None:
        """Start held jobs while the limit allows; give them all back if the queue paused."""
        held = self.held
        queue = self.queue
        if queue.paused:
            self._release()
            return
        jobs = self.jobs
        executor = self.pid
        free = queue.limit - len(jobs)
        while held and free > 0:
            job = held.popleft()
            jobs[otp.spawn_link(_run_job, job, queue, executor)] = job
            free -= 1
        queue.held = len(held)

    def _release(self) -> None:
        """Give back every held job: the producer makes them available again."""
        held = self.held
        if not held:
            return
        self.released.extend(held)
        self._free(len(held))
        held.clear()
        self.queue.held = 0

    def _drop(self, job_id: int) -> None:
        """Forget a held job that was cancelled (its row says so already)."""
        for job in self.held:
            if job.id == job_id:
                self.held.remove(job)
                self.queue.held = len(self.held)
                self._free(1)
                return

    def _free(self, count: int) -> None:
        if not self.freed:
            otp.send(self.pid, _REPORT)
        self.freed += count

    def handle_info(self, message: Any) -> None:
        kind = type(message)
        if kind is Outcome:
            self.outcomes.append(message)  # its process's Exit follows
        elif kind is otp.Exit:
            job = self.jobs.pop(message.pid, None)
            if job is None:
                return  # not a job of ours
            reason = message.reason
            if reason != "normal" and reason != CANCELLED:
                self.outcomes.append(self._exited(job, reason))
            if self.held:
                self._start()
            self._free(1)
        elif message == _REPORT:
            self._report()
        elif message == RELEASE:
            self._release()
        elif message == START:
            if self.held:
                self._start()
        elif kind is Drop:
            self._drop(message.job_id)
        else:
            log.warning(
                "queue %r: executor received an unexpected message: %r", self.queue.name, message
            )

    def _report(self) -> None:
        """Send the producer the outcomes, then ask for as many jobs as slots came free.

        In that order, as one burst: the producer takes both before its next round, which
        fetches for the free slots first and writes the outcomes after.
        """
        if self.outcomes or self.released:
            producer = self.queue.producer
            if producer is not None:
                otp.send(producer, Finished(self.outcomes, self.released))
            self.outcomes = []
            self.released = []
        if self.subscription is not None and self.freed:
            ask(self.subscription, self.freed)
        self.freed = 0

    def _exited(self, job: Job, reason: Any) -> Outcome:
        """A job's process ended without an outcome: its attempt failed."""
        queue = self.queue
        log.error("queue %r: job %d (%s) exited: %r", queue.name, job.id, job.worker, reason)
        error = (
            reason
            if isinstance(reason, Exception)
            else JobExited(
                f"job {job.id} ({job.worker}): its process exited with reason {reason!r}"
            )
        )
        now = otp.current_node().clock.now()
        entry = error_entry(job, error, queue.node, now)
        if job.attempt >= job.max_attempts:
            return Outcome(job, "discarded", entry)
        delay_s = backoff_s(queue.workers.get(job.worker), job)
        return Outcome(job, "retryable", entry, now + timedelta(seconds=delay_s))

    async def terminate(self, reason: Any) -> None:
        # Outcomes that came in and are not reported yet: the producer, stopped after us,
        # writes them.
        with contextlib.suppress(TimeoutError):
            while True:
                self.outcomes.append(await otp.receive(_is_outcome, timeout=0))
        self.subscription = None
        self._release()
        self._report()
        # The watchman gave the grace period already: what still runs stops now, and the
        # producer puts it back.
        for pid in self.jobs:
            otp.exit(pid, otp.KILL)
        self.jobs = {}


class Finished:
    """The outcomes of jobs that ended, and the held jobs given back, from the executor to
    the producer (which writes them), sent just before the executor asks for as many new
    jobs."""

    __slots__ = ("outcomes", "released")

    def __init__(self, outcomes: list[Outcome], released: list[Job]) -> None:
        self.outcomes = outcomes
        self.released = released

    def __repr__(self) -> str:
        return f"<Finished {len(self.outcomes)} jobs, {len(self.released)} given back>"


class Drop:
    """To the executor: job ``job_id`` was cancelled; if it is held, it must not start."""

    __slots__ = ("job_id",)

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id


def _is_outcome(message: Any) -> bool:
    return type(message) is Outcome


async def _run_job(job: Job, queue: Queue, executor: otp.Pid) -> None:
    jobs = queue.jobs
    jobs.running.register(job.id, queue.name)
    otp.send(executor, await execute(job, jobs.registry.get(job.worker), jobs.node))
