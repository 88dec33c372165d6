"""Every error of the job queue, under one root: :class:`JobsError`."""

from __future__ import annotations

__all__ = [
    "InvalidJob",
    "JobExited",
    "JobTimeout",
    "JobsError",
    "MalformedJob",
    "QueueNotRunning",
    "UnknownWorker",
    "WorkerExists",
]


class JobsError(Exception):
    """The root of every error of ``trunkline.jobs``."""


class InvalidJob(JobsError, ValueError):
    """A job or a worker option is invalid: raised at once, before anything is written.

    Raised when arguments are not JSON (a ``datetime``, a ``set``, a tuple, a dict with a key
    that is not a string, ``NaN``), or an option is out of range (a priority outside 0-9,
    ``max_attempts`` below 1, a negative delay, both ``scheduled_at`` and ``in_s``...). The
    message names the option or the place in the arguments.
    """


class UnknownWorker(JobsError, LookupError):
    """No worker of that name is registered.

    Raised by ``WorkerRegistry[name]``; a fetched job whose worker is unknown on the node
    is discarded with this error recorded (see ``docs/jobs.md``), never retried in a loop.
    """


class WorkerExists(JobsError, ValueError):
    """A worker is registered under a name that another worker already holds."""


class JobTimeout(JobsError, TimeoutError):
    """A job ran past its worker's ``timeout_s``: recorded as the error of that attempt.

    The job's task is cancelled and the attempt counts as failed (retried with backoff,
    or discarded after ``max_attempts``).
    """


class JobExited(JobsError):
    """Recorded as the error of an attempt whose process ended without an outcome: killed by
    an exit signal (from a process it linked to, say), or exiting itself; the message has the
    exit reason. The attempt counts as failed."""


class MalformedJob(JobsError):
    """A row of ``trunkline_jobs`` cannot be read as a job (its JSON is invalid, or of the
    wrong shape): the job is discarded with this error recorded, and the queue goes on."""


class QueueNotRunning(JobsError, LookupError):
    """``pause``, ``resume``, ``scale`` or ``queue_info`` named a queue that does not run on
    this node."""
