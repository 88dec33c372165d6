"""The job queue on one node: :class:`Jobs`, its settings, its supervision tree and its API.

::

    JobsSupervisor (one_for_one)
    ├── Notifier            the database's notifications: wake-ups and signals
    ├── Heartbeat           this node's row among the running nodes (heartbeat.py)
    ├── Stager              scheduled and retryable jobs become available when due
    ├── Lifeline            rescues the jobs of lost nodes (lifeline.py)
    ├── Pruner              deletes old ended jobs, unless disabled (pruner.py)
    ├── QueueMetrics        queue depths and rates, when listened to (queue_metrics.py)
    ├── <plugins>           each plugin given, in order (plugin.py)
    └── QueueSupervisor     one per queue: Producer, Executor, Watchman (queue_supervisor.py)

Started, it runs the ``"jobs"`` migrations, then its processes. Stopped (its supervisor
stopping it, or an application's SIGTERM), the queues go first: they stop fetching, give
running jobs ``shutdown_grace_s`` to finish, then stop them and put them back to
``available`` - nothing stays ``executing``.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from trunkline import db, otp

from . import inspection
from .engine import EPOCH, Engine, engine_for
from .enqueue import enqueue, enqueue_many
from .exceptions import QueueNotRunning
from .executor import CANCELLED, Drop
from .heartbeat import Heartbeat
from .job import Job, State
from .lifeline import Lifeline
from .migrations import COMPONENT, MIGRATIONS
from .new_job import NewJob, check_name
from .notifier import Notifier
from .plugin import Plugin
from .pruner import Pruner
from .queue import Queue, QueueInfo, check_limit
from .queue_metrics import OutcomeCounts, QueueMetrics
from .queue_settings import QueueSettings, command
from .queue_supervisor import QueueSupervisor
from .registry import WorkerRegistry
from .stager import Stager
from .worker import Worker

__all__ = ["Jobs", "JobsSupervisor"]


class Jobs:
    """The job queue on this node: the queues it runs, with their settings, and the API to
    enqueue, inspect and control jobs.

    Making one starts nothing: put :meth:`child_spec` in a supervisor (or call
    :meth:`start_link`) to run its queues. The enqueueing and inspecting methods work
    without that, on the database.

    Args:
        database: the database of the jobs.
        registry: the workers this node runs.
        queues: queue name -> the most jobs it runs at once on this node (1 to 10,000);
            default ``{"default": 10}``. A node may run no queue and still enqueue.
        node: this node's name, recorded on the jobs it runs (``attempted_by``); unique
            among running nodes. Default: host name, process id and a random suffix.
        poll_interval_s: how often an idle queue looks for jobs without being notified
            (a safety net: inserts notify).
        stage_interval_s: how often, at most, the stager looks for due jobs it was not told
            about (jobs inserted for later by any node).
        shutdown_grace_s: how long running jobs may take to finish when the node stops.
        migrate: run the ``"jobs"`` migrations when started (default true).
        plugins: processes to run beside the queues, in order (:class:`Plugin`).
        heartbeat_interval_s: how often this node writes its row of the running nodes.
        rescue_after_s: how long a node's row may go without a beat before the node is
            lost and its executing jobs are rescued (more than ``heartbeat_interval_s``).
        prune_after_s: how long completed, discarded and cancelled jobs are kept (default
            7 days); ``None`` keeps them for ever (no pruner).
        prune_interval_s: how often the pruner looks for jobs to delete.
        metrics_interval_s: how often queue depths and rates are emitted
            (``("trunkline", "jobs", "queue", "stats")``, only while a handler listens).

    Raises:
        TypeError, ValueError: an invalid option, named in the message.

    Example::

        registry = WorkerRegistry()

        @registry.worker(queue="mail", max_attempts=5)
        async def send_welcome(job: Job) -> None: ...

        jobs = Jobs(database, registry=registry, queues={"default": 10, "mail": 5})
        await otp.Supervisor.start_link([jobs.child_spec()])

        await jobs.enqueue(send_welcome, {"to": "ada@example.com"})
        await jobs.pause("mail")
        jobs.queue_stats()
    """

    def __init__(
        self,
        database: db.Database,
        *,
        registry: WorkerRegistry,
        queues: Mapping[str, int] | None = None,
        node: str | None = None,
        poll_interval_s: float = 1.0,
        stage_interval_s: float = 1.0,
        shutdown_grace_s: float = 15.0,
        migrate: bool = True,
        plugins: Iterable[Plugin] = (),
        heartbeat_interval_s: float = 5.0,
        rescue_after_s: float = 60.0,
        prune_after_s: float | None = 604_800.0,
        prune_interval_s: float = 60.0,
        metrics_interval_s: float = 10.0,
    ) -> None:
        if not isinstance(database, db.Database):
            raise TypeError(f"database must be a trunkline.db.Database, not {database!r}")
        if not isinstance(registry, WorkerRegistry):
            raise TypeError(f"registry must be a WorkerRegistry, not {registry!r}")
        queues = {"default": 10} if queues is None else queues
        if not isinstance(queues, Mapping):
            raise TypeError(f"queues must map queue names to limits, not {queues!r}")
        self.database = database
        self.engine: Engine = engine_for(database)
        self.registry = registry
        self.node = _default_node() if node is None else check_name("node", node)
        self.poll_interval_s = _seconds("poll_interval_s", poll_interval_s)
        self.stage_interval_s = _seconds("stage_interval_s", stage_interval_s)
        self.shutdown_grace_s = _seconds("shutdown_grace_s", shutdown_grace_s, zero=True)
        self.migrate = bool(migrate)
        self.plugins = _plugins(plugins)
        self.heartbeat_interval_s = _seconds("heartbeat_interval_s", heartbeat_interval_s)
        self.rescue_after_s = _seconds("rescue_after_s", rescue_after_s)
        if self.rescue_after_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"rescue_after_s ({rescue_after_s!r}) must be more than heartbeat_interval_s "
                f"({heartbeat_interval_s!r}): a live node would be taken for lost"
            )
        self.prune_after_s = (
            None if prune_after_s is None else _seconds("prune_after_s", prune_after_s)
        )
        self.prune_interval_s = _seconds("prune_interval_s", prune_interval_s)
        self.metrics_interval_s = _seconds("metrics_interval_s", metrics_interval_s)
        self.outcomes = OutcomeCounts()  # counted by the producers, for the queue metrics
        # When this run of the node's tree started (set as it starts): the jobs it fetched
        # since are its own to put back; older ones under its name are a dead run's.
        self.started_at = EPOCH
        # This node's processes by role, and its running jobs by id: registries of its own,
        # so that several job systems (tests, two "nodes" in one process) never meet.
        self.names = otp.Registry("unique", name=f"jobs {self.node}")
        self.running = otp.Registry("unique", name=f"jobs running on {self.node}")
        # The settings for every node (queue_settings.py) as this node last read or wrote
        # them, by queue: producers apply what changed since, and survive restarts with it.
        self.settings_seen: dict[str, QueueSettings] = {}
        self.queues: dict[str, Queue] = {
            check_name("queue", name): Queue(self, name, limit) for name, limit in queues.items()
        }

    def __repr__(self) -> str:
        return f"<Jobs {self.node!r} queues={ {q.name: q.limit for q in self.queues.values()} }>"

    # -- running -------------------------------------------------------------------------------

    def child_spec(self, *, id: Hashable = "jobs") -> otp.ChildSpec:
        """A child spec for a supervisor: the whole tree, as a supervisor child."""
        return otp.ChildSpec(id, self.start_link, type="supervisor")

    async def start_link(self) -> otp.Pid:
        """Run the migrations, then start the tree, linked to the caller; its pid.

        Raises:
            StartError: the migrations or a process failed to start.
        """
        return await JobsSupervisor.start_link(self, name=otp.Via(self.names, "supervisor"))

    async def start(self) -> otp.Pid:
        """:meth:`start_link` without the link (stop it with ``otp.stop(pid)``)."""
        return await JobsSupervisor.start(self, name=otp.Via(self.names, "supervisor"))

    # -- controlling queues ----------------------------------------------------------------------

    async def pause(self, queue: str, *, local_only: bool = False) -> None:
        """Stop fetching jobs of ``queue`` (running ones go on), on this node, and on every
        node unless ``local_only``: then it is stored, and lasts across restarts until
        resumed (see :func:`~trunkline.jobs.pause_queue`); ``local_only`` changes are this
        node's, in memory, until the stored settings next change.

        Raises:
            QueueNotRunning: ``local_only`` and the queue does not run here.
        """
        await self._command(queue, "pause", local_only)

    async def resume(self, queue: str, *, local_only: bool = False) -> None:
        """Fetch jobs of ``queue`` again, on this node, and on every node unless
        ``local_only``.

        Raises:
            QueueNotRunning: ``local_only`` and the queue does not run here.
        """
        await self._command(queue, "resume", local_only)

    async def scale(self, queue: str, limit: int, *, local_only: bool = False) -> None:
        """Run at most ``limit`` jobs of ``queue`` at once, on this node, and on every node
        unless ``local_only``. Lowering it stops no running job: fewer start.

        Raises:
            ValueError: ``limit`` is not an integer from 1 to 10,000.
            QueueNotRunning: ``local_only`` and the queue does not run here.
        """
        check_limit(limit, queue)
        await self._command(queue, ("scale", limit), local_only, limit=limit)

    async def queue_info(self, queue: str) -> QueueInfo:
        """How ``queue`` runs on this node now.

        Raises:
            QueueNotRunning: it does not run here.
        """
        return await self.control(queue, "info")

    async def control(self, queue: str, request: Any) -> QueueInfo:
        """Send a request to the producer of ``queue`` on this node.

        Raises:
            QueueNotRunning: it does not run here.
        """
        entry = self.queues.get(queue)
        producer = None if entry is None else otp.resolve(entry.name_of("producer"))
        if producer is None:
            raise QueueNotRunning(f"queue {queue!r} does not run on node {self.node!r}")
        result = await otp.call(producer, request)
        if isinstance(result, Exception):
            raise result
        info: QueueInfo = result
        return info

    async def _command(self, queue: str, request: Any, local_only: bool, **fields: Any) -> None:
        check_name("queue", queue)
        if not local_only:
            # Stored (and signalled) first: a change that could not be stored changes nothing.
            action = request if isinstance(request, str) else request[0]
            settings = await command(self.database, queue, action, node=self.node, **fields)
            self.settings_seen[queue] = settings
        if queue in self.queues or local_only:
            await self.control(queue, request)

    # -- jobs ----------------------------------------------------------------------------------

    async def enqueue(self, worker: Worker | str | NewJob, args: Any = None, **options: Any) -> Job:
        """:func:`~trunkline.jobs.enqueue` on this node's database."""
        return await enqueue(self.database, worker, args, **options)

    async def enqueue_many(self, jobs: Iterable[NewJob]) -> list[Job]:
        """:func:`~trunkline.jobs.enqueue_many` on this node's database."""
        return await enqueue_many(self.database, jobs)

    async def get_job(self, job_id: int) -> Job | None:
        """:func:`~trunkline.jobs.get_job` on this node's database."""
        return await inspection.get_job(self.database, job_id)

    async def list_jobs(
        self,
        *,
        state: State | None = None,
        queue: str | None = None,
        worker: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """:func:`~trunkline.jobs.list_jobs` on this node's database."""
        return await inspection.list_jobs(
            self.database, state=state, queue=queue, worker=worker, limit=limit
        )

    async def retry_job(self, job_id: int) -> Job | None:
        """:func:`~trunkline.jobs.retry_job` on this node's database."""
        return await inspection.retry_job(self.database, job_id)

    async def cancel_job(self, job_id: int) -> Job | None:
        """:func:`~trunkline.jobs.cancel_job` on this node's database; the process of a job
        running on this node has ended when this returns (its task is cancelled)."""
        job = await inspection.cancel_job(self.database, job_id)
        if job is not None and job.state == "cancelled":
            self.stop_cancelled(job_id)
        return job

    def holds(self, job_id: int) -> bool:
        """Whether job ``job_id`` may be running here, or held for a free slot."""
        return bool(self.running.lookup(job_id)) or any(q.held for q in self.queues.values())

    def stop_cancelled(self, job_id: int) -> None:
        """Stop job ``job_id``, cancelled already, on this node: end its process, or have
        the executor holding it for a free slot drop it."""
        for pid, _ in self.running.lookup(job_id):
            otp.exit(pid, CANCELLED)
        for queue in self.queues.values():
            if queue.held:
                executor = otp.resolve(queue.name_of("executor"))
                if executor is not None:
                    otp.send(executor, Drop(job_id))

    async def queue_stats(self) -> dict[str, dict[State, int]]:
        """:func:`~trunkline.jobs.queue_stats` on this node's database."""
        return await inspection.queue_stats(self.database)


class JobsSupervisor(otp.Supervisor):
    """The root of a node's job queue; see the module documentation."""

    async def init(self, jobs: Jobs) -> otp.SupervisorSpec:
        if jobs.migrate:
            await jobs.database.migrate({COMPONENT: MIGRATIONS})
        jobs.started_at = otp.current_node().clock.now()
        names = jobs.names
        return otp.SupervisorSpec(
            [
                otp.child_spec(Notifier, jobs, id="notifier", name=otp.Via(names, "notifier")),
                otp.child_spec(Heartbeat, jobs, id="heartbeat", name=otp.Via(names, "heartbeat")),
                otp.child_spec(Stager, jobs, id="stager", name=otp.Via(names, "stager")),
                otp.child_spec(Lifeline, jobs, id="lifeline", name=otp.Via(names, "lifeline")),
                *(
                    [otp.child_spec(Pruner, jobs, id="pruner", name=otp.Via(names, "pruner"))]
                    if jobs.prune_after_s is not None
                    else []
                ),
                otp.child_spec(
                    QueueMetrics, jobs, id="queue_metrics", name=otp.Via(names, "queue_metrics")
                ),
                *(plugin.child_spec(jobs) for plugin in jobs.plugins),
                *(
                    otp.child_spec(
                        QueueSupervisor, queue, id=("queue", name), name=queue.name_of("queue")
                    )
                    for name, queue in jobs.queues.items()
                ),
            ],
            strategy="one_for_one",
        )


def _default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _plugins(plugins: Iterable[Plugin]) -> tuple[Plugin, ...]:
    if isinstance(plugins, str | bytes) or not isinstance(plugins, Iterable):
        raise TypeError(f"plugins must be an iterable of plugins, not {plugins!r}")
    result = tuple(plugins)
    names: set[str] = set()
    for plugin in result:
        if not isinstance(plugin, Plugin):
            raise TypeError(f"a plugin needs a name and a child_spec(jobs) method, not {plugin!r}")
        if plugin.name in names:
            raise ValueError(f"two plugins are named {plugin.name!r}")
        names.add(plugin.name)
    return result


def _seconds(option: str, value: Any, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{option} must be seconds {bound}, not {value!r}")
    return float(value)
