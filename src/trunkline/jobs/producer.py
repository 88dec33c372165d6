"""The producer of a queue: a producer stage that fetches jobs and acknowledges outcomes.

Its one consumer is the queue's executor, which subscribes with a large ``max_demand`` and
asks again for each job that ends; so the producer's pending demand is the executor's free
capacity, and ``running = capacity - demand``. It fetches ``min(demand, limit - running)``
jobs, so at most ``limit`` run, and ``limit`` can change at run time (``scale``).

Everything that calls for work - demand, an outcome to acknowledge, a notification that
jobs were inserted, the slow poll - queues one ``_WORK`` message to itself, unless one is
queued already. The work (fetch for the free slots and hand the jobs out, then write the
outcomes that came in, one statement per kind) runs after the messages already in the
mailbox, so a burst of them costs one round of statements: batching without a timer. While
a statement waits for the database, more outcomes and demand pile up for the next round, so
the batches grow with the load.

When the database fails, the producer logs it, waits (exponential backoff, 0.1 s to 5 s,
with jitter) and tries again: it never crashes for it, so an outage does not use up its
supervisor's restart intensity. Outcomes not yet written are kept and written when the
database is back; as each statement only ends executions still ``executing``, writing one
twice changes nothing.

The queue's settings for every node (``trunkline_job_queues``, see ``queue_settings.py``)
are read when the producer starts and on each poll, never on the fetch: a pause or a limit
stored by any process reaches this node within a poll, even without a notification.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from trunkline import db, otp
from trunkline.otp.stage import Cancellation, Emit, ProducerInit, Stage, Subscription

from .acks import Acks
from .backoff import database_retry_s
from .exceptions import MalformedJob
from .execution import quarantine
from .executor import Finished
from .job import Job
from .queue import MAX_LIMIT, Queue, QueueInfo
from .queue_settings import QueueSettings

__all__ = ["WAKE", "Producer"]

log = logging.getLogger("trunkline.jobs")


WAKE = "wake"
"""Jobs may have become available: sent by the notifier."""
_WORK = "work"
_POLL = "poll"
_RETRY = "retry"
_WRITE = "write"


class Producer(Stage):
    """A queue's producer stage; see the module documentation."""

    trap_exit = True  # so that terminate writes the last outcomes and puts jobs back

    queue: Queue
    capacity: int  # what the executor subscribed for
    demand: int  # what it asked for and has not been sent
    work_queued: bool
    backing_off: bool
    failures: int
    stopping: bool
    acks: Acks
    drain_waiters: list[otp.From]

    async def init(self, queue: Queue) -> ProducerInit:
        self.queue = queue
        queue.producer = self.pid
        self.capacity = self.demand = 0
        self.work_queued = self.backing_off = self.stopping = False
        self.failures = 0
        self.acks = Acks(queue.node)
        self.drain_waiters = []
        # Jobs a previous tree of this queue left executing on this node: its processes
        # are gone (the queue's supervisor stops all three before restarting any).
        try:
            count = await queue.engine.put_back(queue.database, queue.name, queue.node)
        except db.DatabaseError as error:
            log.warning("queue %r: could not put back its stopped jobs: %s", queue.name, error)
        else:
            if count:
                log.warning(
                    "queue %r: put back %d jobs left executing by its previous run",
                    queue.name,
                    count,
                )
        await self._read_settings()
        otp.send_after(queue.jobs.poll_interval_s, self.pid, _POLL)
        return ProducerInit()

    @property
    def running(self) -> int:
        return self.capacity - self.demand

    # -- demand ------------------------------------------------------------------------------

    def handle_subscribe(
        self, kind: str, options: Mapping[str, Any], subscription: Subscription
    ) -> str:
        self.capacity += options["max_demand"]
        return "automatic"

    def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> None:
        # The executor is gone, and its jobs with it: the queue's supervisor restarts us all.
        self.capacity = self.demand = 0

    def handle_demand(self, demand: int) -> None:
        self.demand += demand
        if self.drain_waiters and self.running == 0:
            for waiter in self.drain_waiters:
                otp.reply(waiter, None)
            self.drain_waiters = []
        self._queue_work()

    # -- messages ----------------------------------------------------------------------------

    async def handle_info(self, message: Any) -> list[Job] | Emit | None:
        if message == _WORK:
            return await self._work()
        if type(message) is Finished:
            add = self.acks.add
            for outcome in message.outcomes:
                add(outcome)
            self.queue.jobs.outcomes.add(self.queue.name, message.outcomes)  # for the rates
            self._queue_work()
        elif message == WAKE:
            self._queue_work()
        elif message == _POLL:
            otp.send_after(self.queue.jobs.poll_interval_s, self.pid, _POLL)
            if not self.backing_off:  # the database is failing: the retry will tell
                await self._read_settings()
            self._queue_work()
        elif message == _RETRY:
            self.backing_off = False
            self._queue_work()
        else:
            log.warning(
                "queue %r: producer received an unexpected message: %r", self.queue.name, message
            )
        return None

    def _queue_work(self) -> None:
        if not self.work_queued:
            self.work_queued = True
            otp.send(self.pid, _WORK)

    async def _work(self) -> list[Job] | Emit | None:
        """Fetch what the free slots allow, hand it out, then write the outcomes that came
        in: a slot freed by a job is filled again before its outcome is written."""
        self.work_queued = False
        if self.backing_off:
            return None
        jobs = await self._fetch()
        if self.acks and not self.backing_off:
            return Emit(jobs or [], continue_=_WRITE)
        return jobs

    async def _fetch(self) -> list[Job] | None:
        queue = self.queue
        if queue.paused or self.stopping:
            return None
        count = min(self.demand, queue.limit - self.running)
        if count <= 0:
            return None
        engine = queue.engine
        # Where the dialect does both in one statement, the completed jobs' outcomes ride
        # with the fetch: one round trip and one commit a round instead of two.
        completed = self.acks.completed if engine.completes_on_fetch else ()
        try:
            rows = await engine.fetch_completing(
                queue.database,
                queue.name,
                count,
                queue.node,
                otp.current_node().clock.now(),
                completed,
            )
        except db.DatabaseError as error:
            self._failed("fetch", error)
            return None
        if completed:
            self.acks.completed = []
        self.failures = 0
        jobs = []
        for row in rows:
            try:
                jobs.append(Job.from_row(row))
            except MalformedJob as error:
                self._quarantine(row, error)
        self.demand -= len(jobs)
        return jobs

    async def handle_continue(self, term: Any) -> None:
        if term == _WRITE:
            await self._write()

    async def _write(self) -> None:
        queue = self.queue
        try:
            later = await self.acks.write(
                queue.engine, queue.database, otp.current_node().clock.now()
            )
        except db.DatabaseError as error:
            self._failed("record the outcomes of", error)
            return
        self.failures = 0
        if later:
            self._tell_stager()

    async def _read_settings(self) -> None:
        """Apply what changed in the queue's stored settings since this node last saw them
        (all of them the first time): a change made with ``local_only`` lasts until then."""
        queue = self.queue
        try:
            row = await queue.engine.queue_settings(queue.database, queue.name)
        except db.DatabaseError as error:
            log.warning("queue %r: could not read its settings: %s", queue.name, error)
            return
        if row is None:
            return
        settings = QueueSettings.from_row(row)
        seen_by_queue = queue.jobs.settings_seen
        seen = seen_by_queue.get(queue.name)
        if settings == seen:
            return
        seen_by_queue[queue.name] = settings
        if seen is None or settings.paused != seen.paused:
            queue.paused = settings.paused
        limit = settings.limit
        if limit is not None and (seen is None or limit != seen.limit):
            if type(limit) is int and 1 <= limit <= MAX_LIMIT:
                queue.limit = limit
            else:
                log.warning("queue %r: ignored a stored limit of %r", queue.name, limit)

    def _quarantine(self, row: db.Row, error: MalformedJob) -> None:
        """Discard a row that is not a job, with the reason, rather than fail on it."""
        queue = self.queue
        log.error("queue %r: %s; the job is discarded", queue.name, error)
        self.acks.add(quarantine(row, error, queue.node, otp.current_node().clock.now()))
        self._queue_work()

    def _failed(self, what: str, error: db.DatabaseError) -> None:
        self.failures += 1
        delay_s = database_retry_s(self.failures)
        log.warning(
            "queue %r: could not %s jobs (%s: %s); trying again in %.2fs",
            self.queue.name,
            what,
            type(error).__name__,
            error,
            delay_s,
        )
        self.backing_off = True
        otp.send_after(delay_s, self.pid, _RETRY)

    def _tell_stager(self) -> None:
        stager = otp.resolve(otp.Via(self.queue.jobs.names, "stager"))
        if stager is not None:
            otp.cast(stager, "recheck")

    # -- requests ----------------------------------------------------------------------------

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        queue = self.queue
        match request:
            case "info":
                return self._info()
            case "pause":
                queue.paused = True
                return self._info()
            case "resume":
                queue.paused = False
                self._queue_work()
                return self._info()
            case ("scale", int(limit)) if 1 <= limit <= MAX_LIMIT:
                queue.limit = limit
                self._queue_work()
                return self._info()
            case "drain":
                # Shutting down: fetch no more; answer once nothing runs.
                self.stopping = True
                if self.running == 0:
                    return None
                self.drain_waiters.append(from_)
                return otp.NoReply()
        # Answered, not raised: a bad request must not take the queue down.
        return ValueError(f"queue {queue.name!r}: the producer does not understand {request!r}")

    def _info(self) -> QueueInfo:
        queue = self.queue
        return QueueInfo(queue.name, queue.node, queue.limit, self.running, queue.paused)

    # -- stopping ----------------------------------------------------------------------------

    async def terminate(self, reason: Any) -> None:
        queue = self.queue
        if self.acks:
            try:
                await self.acks.write(queue.engine, queue.database, otp.current_node().clock.now())
            except db.DatabaseError as error:
                log.error(
                    "queue %r: could not record the outcomes of its last jobs (%s); they stay "
                    "executing until rescued",
                    queue.name,
                    error,
                )
        if not otp.is_normal_exit(reason):
            return  # we crashed, jobs may still run: the next producer puts them back
        # A shutdown: the executor, stopped before us, has stopped every job it ran.
        try:
            count = await queue.engine.put_back(queue.database, queue.name, queue.node)
        except db.DatabaseError as error:
            log.error(
                "queue %r: could not put back its stopped jobs (%s); they stay executing "
                "until rescued",
                queue.name,
                error,
            )
        else:
            if count:
                log.info("queue %r: put back %d jobs stopped by the shutdown", queue.name, count)
