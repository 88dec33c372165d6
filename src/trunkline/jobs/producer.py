"""The producer of a queue: a producer stage that fetches jobs and acknowledges outcomes.

Its one consumer is the queue's executor, which subscribes with a large ``max_demand`` and
asks again for each job that ends; so the producer's pending demand is the executor's free
capacity, and ``running = capacity - demand``. It fetches ``min(demand, limit - running)``
jobs, so at most ``limit`` run, and ``limit`` can change at run time (``scale``).

Everything that calls for a fetch - demand, a notification that jobs were inserted, the
slow poll - queues one ``_WORK`` message to itself, unless one is queued already. The fetch
(for the free slots) runs after the messages already in the mailbox, so a burst of them
costs one statement: batching without a timer. The outcomes of ended jobs go to the
queue's *writer*, a linked process that writes a batch at a time (one statement per kind of
outcome) while the producer goes on fetching: a slot that comes free waits for one fetch,
never for a write. While the writer waits for the database, more outcomes pile up in the
producer for its next batch, so the batches grow with the load.

While the queue is busy, the producer takes a few jobs *ahead* of the free slots, which the
executor holds and starts the moment a slot frees: a job that ends is followed at once, not
after a fetch's round trip. How many is what the queue starts in ``AHEAD_S`` at its rate of
the last moments (never more than its limit), so a busy queue of short jobs keeps a small
reserve and a queue of long or rare jobs takes none, leaving them to other nodes. While
every slot is busy the reserve is topped up once half of it is gone, so a busy queue
fetches once per half reserve rather than once per job that ends. A held job
is executing on this node in the database (its attempt counted, like a running one); pausing
or draining the queue gives the held ones back (available again, attempt returned), and a
crash or a dead node leaves them to be put back or rescued like any other.

When the database fails, the producer and the writer log it, wait (exponential backoff,
0.1 s to 5 s, with jitter) and try again: they never crash for it, so an outage does not
use up the supervisor's restart intensity. Outcomes not yet written are kept and written
when the database is back; as each statement only ends executions still ``executing`` on
this node, writing one twice changes nothing.

The queue's settings for every node (``trunkline_job_queues``, see ``queue_settings.py``)
are read when the producer starts and on each poll, never on the fetch: a pause or a limit
stored by any process reaches this node within a poll, even without a notification.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from trunkline import db, otp
from trunkline.otp.stage import Cancellation, ProducerInit, Stage, Subscription

from .acks import Acks
from .backoff import database_retry_s
from .exceptions import MalformedJob
from .execution import quarantine
from .executor import RELEASE, START, Finished
from .job import Job
from .queue import MAX_LIMIT, Queue, QueueInfo
from .queue_settings import QueueSettings

__all__ = ["AHEAD_S", "WAKE", "Producer"]

log = logging.getLogger("trunkline.jobs")


WAKE = "wake"
"""Jobs may have become available: sent by the notifier."""
_WORK = "work"
_POLL = "poll"
_RETRY = "retry"
_FLUSH_TIMEOUT_S = 5.0  # how long a stopping producer waits for the writer's last batch

AHEAD_S = 0.05
"""How far ahead a busy queue takes jobs: what it starts in this long at its recent rate."""
_RATE_WINDOW_S = 0.1  # the rate is measured over windows at least this long


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
    acks: Acks  # outcomes not handed to the writer yet
    writer: otp.Pid
    writing: bool  # the writer has a batch
    drain_waiters: list[otp.From]
    ended: int  # jobs ended since the producer started
    rate: float  # jobs ended per second, lately
    rate_since: float  # when the current window began (monotonic)
    rate_ended: int  # ``ended`` when it began

    async def init(self, queue: Queue) -> ProducerInit:
        self.queue = queue
        queue.producer = self.pid
        self.capacity = self.demand = 0
        self.work_queued = self.backing_off = self.stopping = False
        self.failures = 0
        self.acks = Acks(queue.node)
        self.writer = otp.spawn_link(_write_outcomes, queue, self.pid)
        self.writing = False
        self.drain_waiters = []
        self.ended = self.rate_ended = 0
        self.rate = 0.0
        self.rate_since = otp.current_node().clock.monotonic()
        # Jobs a previous tree of this queue left executing on this node: its processes
        # are gone (the queue's supervisor stops all three before restarting any).
        try:
            count = await queue.engine.put_back(
                queue.database, queue.name, queue.node, queue.jobs.started_at
            )
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

    async def handle_info(self, message: Any) -> list[Job] | None:
        if message == _WORK:
            return await self._work()
        kind = type(message)
        if kind is Finished:
            outcomes = message.outcomes
            add = self.acks.add
            for outcome in outcomes:
                add(outcome)
            if message.released:
                self.acks.release(message.released)
            self.ended += len(outcomes)
            self.queue.jobs.outcomes.add(self.queue.name, outcomes)  # for the rates
            self._hand_off()
        elif kind is _Written:
            self.writing = False
            if message.later:
                self._tell_stager()
            self._hand_off()
        elif kind is otp.Exit and message.pid is self.writer:
            # A bug in the writer, not the database (it waits those out): the queue's tree
            # restarts, and the next producer puts back what this one left executing.
            raise RuntimeError(
                f"the outcome writer of queue {self.queue.name!r} exited: {message.reason!r}"
            )
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

    async def _work(self) -> list[Job] | None:
        """Fetch what the free slots allow, and hand it out."""
        self.work_queued = False
        if self.backing_off:
            return None
        return await self._fetch()

    def _hand_off(self) -> None:
        """Give the writer the outcomes that came in, unless it is busy with a batch: they
        wait for the next one."""
        if self.acks and not self.writing:
            otp.send(self.writer, self.acks)
            self.acks = Acks(self.queue.node)
            self.writing = True

    async def _fetch(self) -> list[Job] | None:
        queue = self.queue
        if queue.paused or self.stopping:
            return None
        ahead = self._ahead()
        count = min(self.demand, queue.limit + ahead - self.running)
        if count <= 0 or 2 * queue.held > ahead:
            # Nothing to take; or every slot is busy and the reserve more than half full:
            # it is topped up when half gone, a fetch per half reserve, not per job ended.
            return None
        try:
            rows = await queue.engine.fetch(
                queue.database, queue.name, count, queue.node, otp.current_node().clock.now()
            )
        except db.DatabaseError as error:
            self._failed("fetch", error)
            return None
        self.failures = 0
        jobs = []
        for row in rows:
            try:
                jobs.append(Job.from_row(row))
            except MalformedJob as error:
                self._quarantine(row, error)
        if len(jobs) < len(rows):
            self._hand_off()  # the quarantined rows, as one batch
        self.demand -= len(jobs)
        return jobs

    def _ahead(self) -> int:
        """How many jobs to take beyond the free slots: see the module documentation."""
        now = otp.current_node().clock.monotonic()
        elapsed = now - self.rate_since
        if elapsed >= _RATE_WINDOW_S:
            # A burst lifts the rate at once; a lull lowers it by halves, window by window
            # (an idle queue's windows are its polls).
            rate = (self.ended - self.rate_ended) / elapsed
            self.rate = rate if rate > self.rate else (self.rate + rate) / 2
            self.rate_since = now
            self.rate_ended = self.ended
        return min(self.queue.limit, int(self.rate * AHEAD_S))

    def _release_held(self) -> None:
        """Have the executor give back the jobs it holds (paused, or draining)."""
        self._tell_executor(RELEASE)

    def _tell_executor(self, message: str) -> None:
        executor = otp.resolve(self.queue.name_of("executor"))
        if executor is not None:
            otp.send(executor, message)

    async def _read_settings(self) -> None:
        """Apply what changed in the queue's stored settings since this node last saw them
        (all of them the first time): a change made with ``local_only`` lasts until then."""
        queue = self.queue
        try:
            row = await queue.engine.queue_settings(queue.database, queue.name)
            if row is None:
                return
            settings = QueueSettings.from_row(row)
        except (db.DatabaseError, ValueError, TypeError) as error:
            # Down, or a row written by hand that does not read: the settings stay as they are.
            log.warning("queue %r: could not read its settings: %s", queue.name, error)
            return
        seen_by_queue = queue.jobs.settings_seen
        seen = seen_by_queue.get(queue.name)
        if settings == seen:
            return
        seen_by_queue[queue.name] = settings
        if seen is None or settings.paused != seen.paused:
            queue.paused = settings.paused
            if queue.paused:
                self._release_held()
        limit = settings.limit
        if limit is not None and (seen is None or limit != seen.limit):
            if type(limit) is int and 1 <= limit <= MAX_LIMIT:
                queue.limit = limit
                self._tell_executor(START)
            else:
                log.warning("queue %r: ignored a stored limit of %r", queue.name, limit)

    def _quarantine(self, row: db.Row, error: MalformedJob) -> None:
        """Discard a row that is not a job, with the reason, rather than fail on it."""
        queue = self.queue
        log.error("queue %r: %s; the job is discarded", queue.name, error)
        self.acks.add(quarantine(row, error, queue.node, otp.current_node().clock.now()))

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
                self._release_held()
                return self._info()
            case "resume":
                queue.paused = False
                self._queue_work()
                return self._info()
            case ("scale", int(limit)) if 1 <= limit <= MAX_LIMIT:
                queue.limit = limit
                self._tell_executor(START)  # a higher limit starts held jobs at once
                self._queue_work()
                return self._info()
            case "drain":
                # Shutting down: fetch no more; answer once nothing runs.
                self.stopping = True
                if self.running == 0:
                    return None
                self._release_held()
                self.drain_waiters.append(from_)
                return otp.NoReply()
        # Answered, not raised: a bad request must not take the queue down.
        return ValueError(f"queue {queue.name!r}: the producer does not understand {request!r}")

    def _info(self) -> QueueInfo:
        queue = self.queue
        held = queue.held
        return QueueInfo(
            queue.name, queue.node, queue.limit, self.running - held, queue.paused, held
        )

    # -- stopping ----------------------------------------------------------------------------

    async def terminate(self, reason: Any) -> None:
        queue = self.queue
        if self.writing:  # its batch first: the jobs in it must not be put back
            try:
                message = await otp.receive(_is_written, timeout=_FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.error(
                    "queue %r: the outcomes being written did not make it within %.0fs (is "
                    "the database down?); their jobs stay executing until rescued",
                    queue.name,
                    _FLUSH_TIMEOUT_S,
                )
            else:
                if message.later:
                    self._tell_stager()
        otp.exit(self.writer, otp.KILL)
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
            count = await queue.engine.put_back(
                queue.database, queue.name, queue.node, queue.jobs.started_at
            )
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


class _Written:
    """From the writer: its batch is written; ``later``: some jobs will run again later."""

    __slots__ = ("later",)

    def __init__(self, later: bool) -> None:
        self.later = later


def _is_written(message: Any) -> bool:
    return type(message) is _Written


async def _write_outcomes(queue: Queue, producer: otp.Pid) -> None:
    """The writer: write each batch of outcomes the producer sends, then say so; through a
    database failure, wait and try the same batch again (outcomes that come meanwhile wait
    in the producer)."""
    failures = 0
    while True:
        acks: Acks = await otp.receive()
        while True:
            try:
                later = await acks.write(
                    queue.engine, queue.database, otp.current_node().clock.now()
                )
            except db.DatabaseError as error:
                failures += 1
                delay_s = database_retry_s(failures)
                log.warning(
                    "queue %r: could not record the outcomes of jobs (%s: %s); trying again "
                    "in %.2fs",
                    queue.name,
                    type(error).__name__,
                    error,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                continue
            failures = 0
            break
        otp.send(producer, _Written(later))
