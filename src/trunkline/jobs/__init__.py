"""trunkline.jobs: a durable job queue on SQLite or PostgreSQL, run by supervised processes.

::

    from trunkline import db, jobs, otp

    registry = jobs.WorkerRegistry()

    @registry.worker(queue="mail", max_attempts=5)
    async def send_welcome(job: jobs.Job) -> None:
        await mailer.send(job.args["to"], "Welcome!")

    database = await db.connect("sqlite:///./trunkline.db")
    node = jobs.Jobs(database, registry=registry, queues={"default": 10, "mail": 5})
    await otp.Supervisor.start_link([node.child_spec()])

    async with database.transaction() as tx:
        await tx.execute("INSERT INTO users (email) VALUES ($1)", "ada@example.com")
        await jobs.enqueue(tx, send_welcome, {"to": "ada@example.com"})

Jobs are rows of ``trunkline_jobs`` moving through Oban's states; each queue is a small
supervision tree (a producer stage fetching with row locks, an executor running each job in
a process of its own); failed attempts are retried with backoff, then discarded. See
``docs/jobs.md``. The testing helpers are in :mod:`trunkline.jobs.testing`.
"""

from . import backoff
from .cron import CRON_LATE_LIMIT_S, CRON_NICKNAMES, Cron, CronEntry
from .engine import INSERT_CHANNEL, SIGNAL_CHANNEL
from .enqueue import enqueue, enqueue_many
from .exceptions import (
    InvalidJob,
    JobExited,
    JobsError,
    JobTimeout,
    MalformedJob,
    QueueNotRunning,
    UnknownWorker,
    WorkerExists,
)
from .execution import JOB_EVENT
from .inspection import cancel_job, get_job, list_jobs, queue_stats, retry_job
from .job import FINAL_STATES, STATES, Job, State
from .jobs import Jobs
from .lifeline import NODE_LOST
from .migrations import COMPONENT, MIGRATIONS, NODES_TABLE, QUEUES_TABLE, TABLE
from .new_job import NewJob, new_job
from .plugin import Plugin
from .queue import MAX_LIMIT, QueueInfo
from .queue_metrics import QUEUE_EVENT
from .queue_settings import (
    QueueSettings,
    pause_queue,
    queue_settings,
    resume_queue,
    scale_queue,
)
from .registry import WorkerRegistry
from .results import Cancel, Discard, Snooze
from .unique import Unique
from .worker import FunctionWorker, Worker, worker

__all__ = [
    "COMPONENT",
    "CRON_LATE_LIMIT_S",
    "CRON_NICKNAMES",
    "FINAL_STATES",
    "INSERT_CHANNEL",
    "JOB_EVENT",
    "MAX_LIMIT",
    "MIGRATIONS",
    "NODES_TABLE",
    "NODE_LOST",
    "QUEUES_TABLE",
    "QUEUE_EVENT",
    "SIGNAL_CHANNEL",
    "STATES",
    "TABLE",
    "Cancel",
    "Cron",
    "CronEntry",
    "Discard",
    "FunctionWorker",
    "InvalidJob",
    "Job",
    "JobExited",
    "JobTimeout",
    "Jobs",
    "JobsError",
    "MalformedJob",
    "NewJob",
    "Plugin",
    "QueueInfo",
    "QueueNotRunning",
    "QueueSettings",
    "Snooze",
    "State",
    "Unique",
    "UnknownWorker",
    "Worker",
    "WorkerExists",
    "WorkerRegistry",
    "backoff",
    "cancel_job",
    "enqueue",
    "enqueue_many",
    "get_job",
    "list_jobs",
    "new_job",
    "pause_queue",
    "queue_settings",
    "queue_stats",
    "resume_queue",
    "retry_job",
    "scale_queue",
    "worker",
]
