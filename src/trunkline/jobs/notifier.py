"""The notifier: a node's ear on the database's notifications for the job queue.

It listens on two channels (see :mod:`trunkline.jobs.engine`):

- :data:`INSERT_CHANNEL`, payload a queue's name: jobs became available in it; the queue's
  producer, if it runs on this node, is woken to fetch them at once, instead of at its
  next poll;
- :data:`SIGNAL_CHANNEL`, payload a JSON command for every node:
  ``{"action": "cancel", "id": 42}`` stops job 42 if it runs here (after checking in the
  database that it was cancelled: the channel is the whole PostgreSQL server's, and another
  system's job 42 is not ours);
  ``{"action": "pause" | "resume", "queue": "mail", "node": "..."}`` and
  ``{"action": "scale", "queue": "mail", "limit": 20, "node": "..."}`` apply to the queue on
  every node but the one that sent them (which acted already).

On SQLite notifications stay in the process that sent them, so a job cancelled by another
process (the command line, another node on the same file) would run on to its end: there
the notifier also looks, every ``poll_interval_s`` while jobs run here, for those of them
that were cancelled, and stops them.

A subscription is read by a small linked process that forwards each notification as a
message, so the notifier stays an ordinary server. If listening fails (the database is down)
or the subscription ends, it tries again with backoff; meanwhile the producers' polls keep
the queues going. A malformed signal is logged and ignored.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .backoff import database_retry_s
from .engine import INSERT_CHANNEL, SIGNAL_CHANNEL
from .exceptions import QueueNotRunning
from .executor import CANCELLED
from .producer import WAKE
from .queue import check_limit

if TYPE_CHECKING:
    from .jobs import Jobs

__all__ = ["Notifier", "signal"]

log = logging.getLogger("trunkline.jobs")

_LISTEN = "listen"
_CHECK_CANCELLED = "check_cancelled"
_CLOSED = "closed"


async def signal(conn: db.Database | db.Transaction, action: str, **fields: Any) -> None:
    """Send a command to the notifiers of every node (on commit, in a transaction)."""
    await conn.notify(SIGNAL_CHANNEL, json.dumps({"action": action, **fields}))


class Notifier(otp.GenServer):
    """See the module documentation."""

    trap_exit = True  # to close the subscription when stopped

    async def init(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.subscription: db.Subscription | None = None
        self.pump: otp.Pid | None = None
        self.failures = 0
        await self._listen()
        if not jobs.engine.signals_cross_processes:
            otp.send_after(jobs.poll_interval_s, self.pid, _CHECK_CANCELLED)

    async def _listen(self) -> None:
        try:
            subscription = await self.jobs.database.listen(INSERT_CHANNEL, SIGNAL_CHANNEL)
        except db.DatabaseError as error:
            self.failures += 1
            delay_s = database_retry_s(self.failures)
            log.warning(
                "jobs on %s: cannot listen for notifications (%s); trying again in %.2fs, "
                "queues poll meanwhile",
                self.jobs.node,
                error,
                delay_s,
            )
            otp.send_after(delay_s, self.pid, _LISTEN)
            return
        self.failures = 0
        self.subscription = subscription
        self.pump = otp.spawn_link(_pump, subscription, self.pid)

    async def handle_info(self, message: Any) -> None:
        if type(message) is db.Notification:
            if message.channel == INSERT_CHANNEL:
                self._wake(message.payload)
            else:
                await self._signal(message.payload)
        elif message == _LISTEN:
            await self._listen()
        elif message == _CHECK_CANCELLED:
            otp.send_after(self.jobs.poll_interval_s, self.pid, _CHECK_CANCELLED)
            await self._check_cancelled()
        elif type(message) is otp.Exit and message.pid is self.pump:
            # The subscription ended (the database closed) or its reader failed.
            self.pump = self.subscription = None
            otp.send_after(0.1, self.pid, _LISTEN)
        else:
            log.warning("jobs notifier received an unexpected message: %r", message)

    def _wake(self, queue: str) -> None:
        producer = otp.resolve(otp.Via(self.jobs.names, ("producer", queue)))
        if producer is not None:
            otp.send(producer, WAKE)

    async def _signal(self, payload: str) -> None:
        try:
            command = json.loads(payload)
            action = command["action"]
        except (ValueError, TypeError, KeyError):
            log.warning("jobs: ignored a malformed signal: %r", payload)
            return
        try:
            if action == "cancel":
                await self._cancel(int(command["id"]))
            elif action in ("pause", "resume", "scale"):
                if command.get("node") == self.jobs.node:
                    return  # sent by us: done already
                queue = str(command["queue"])
                request: Any = action
                if action == "scale":
                    request = ("scale", check_limit(command["limit"], queue))
                if queue in self.jobs.queues:
                    await self.jobs.control(queue, request)
            else:
                log.warning("jobs: ignored a signal with an unknown action: %r", payload)
        except (ValueError, TypeError, KeyError) as error:
            log.warning("jobs: ignored a malformed signal %r: %s", payload, error)
        except (otp.CallError, QueueNotRunning) as error:  # the queue is restarting, say
            log.warning("jobs: could not apply the signal %r: %s", payload, error)

    async def _cancel(self, job_id: int) -> None:
        jobs = self.jobs
        if not jobs.holds(job_id):
            return
        try:
            state = await jobs.engine.state_of(jobs.database, job_id)
        except db.DatabaseError as error:
            log.warning("jobs: could not check job %d to cancel it: %s", job_id, error)
            return
        if state == "cancelled":
            jobs.stop_cancelled(job_id)

    async def _check_cancelled(self) -> None:
        """Stop the jobs running here that were cancelled (by another process)."""
        jobs = self.jobs
        running = jobs.running.select()
        if not running:
            return
        try:
            cancelled = await jobs.engine.cancelled_among(
                jobs.database, [job_id for job_id, _, _ in running if type(job_id) is int]
            )
        except db.DatabaseError as error:
            log.warning("jobs: could not look for cancelled jobs: %s", error)
            return
        for job_id in cancelled:
            for pid, _ in jobs.running.lookup(job_id):
                otp.exit(pid, CANCELLED)

    async def terminate(self, reason: Any) -> None:
        if self.subscription is not None:
            await self.subscription.close()


async def _pump(subscription: db.Subscription, notifier: otp.Pid) -> None:
    async for notification in subscription:
        otp.send(notifier, notification)
