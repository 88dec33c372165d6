"""Workers: named pieces of work, with the options of the jobs they run.

A worker is an async function (or a plain one, run in a thread) decorated with
:func:`worker`, or a subclass of :class:`Worker` with a ``perform`` method. Either way it has
a *name* - what jobs record, so choose it to outlive refactors - and defaults for its jobs:
queue, priority, max_attempts, timeout, backoff, uniqueness, tags. A node runs the workers
registered in its :class:`~trunkline.jobs.WorkerRegistry`.

Example::

    @worker(queue="mail", max_attempts=5, timeout_s=30)
    async def send_welcome(job: Job) -> None:
        await smtp.send(job.args["to"], "Welcome!")

    class Resize(Worker):
        queue = "media"
        unique = Unique(period_s=600)

        async def perform(self, job: Job) -> Snooze | None:
            if not await storage.ready(job.args["key"]):
                return Snooze(30)
            await resize(job.args["key"])

        def backoff(self, job: Job) -> float:
            return 10.0 * job.attempt          # linear, instead of the default

    await enqueue(database, send_welcome, {"to": "ada@example.com"})
    await enqueue(database, Resize().new({"key": "a.png"}, priority=3))
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, overload

from . import backoff as _backoff
from .exceptions import InvalidJob
from .job import Job
from .new_job import (
    MAX_ATTEMPTS,
    NewJob,
    check_max_attempts,
    check_name,
    check_priority,
    check_tags,
)
from .unique import Unique

__all__ = ["FunctionWorker", "Worker", "check_options", "worker"]

Perform = Callable[[Job], Any]
Backoff = Callable[[Job], float]

_UNSET: Any = object()


class Worker:
    """A worker: subclass it and define ``perform(job)``, async or plain.

    Class attributes give the defaults of every instance; keyword arguments of the
    constructor override them for one instance.

    Attributes:
        name: what jobs record; default ``"<module>.<class qualname>"``.
        queue: the queue its jobs run in (default ``"default"``).
        max_attempts: attempts that may fail before a job is discarded (default 20).
        priority: 0 (first) to 9 (last) (default 0).
        timeout_s: a job running longer is cancelled, and the attempt fails with
            :class:`~trunkline.jobs.JobTimeout` (default ``None``: no limit).
        unique: how its jobs are unique (default ``None``: not unique).
        tags: labels given to its jobs.

    A plain (not ``async``) ``perform`` runs in a thread of the event loop's default
    executor; a timeout or a cancellation then stops waiting for it, but the thread runs on
    to the end (Python cannot stop a thread).

    Raises:
        InvalidJob: an option is invalid; the message names it.
    """

    name: str = ""
    queue: str = "default"
    max_attempts: int = MAX_ATTEMPTS
    priority: int = 0
    timeout_s: float | None = None
    unique: Unique | None = None
    tags: Sequence[str] = ()
    is_async: bool  # whether perform is a coroutine function (else it runs in a thread)

    def __init__(
        self,
        *,
        name: str | None = None,
        queue: str = _UNSET,
        max_attempts: int = _UNSET,
        priority: int = _UNSET,
        timeout_s: float | None = _UNSET,
        unique: Unique | None = _UNSET,
        tags: Sequence[str] = _UNSET,
        backoff: Backoff | None = None,
    ) -> None:
        cls = type(self)
        if name is None:
            name = cls.name or f"{cls.__module__}.{cls.__qualname__}"
        self.name = check_name("name", name)
        self.queue = check_name("queue", cls.queue if queue is _UNSET else queue)
        self.max_attempts = check_max_attempts(
            cls.max_attempts if max_attempts is _UNSET else max_attempts
        )
        self.priority = check_priority(cls.priority if priority is _UNSET else priority)
        self.timeout_s = _check_timeout(cls.timeout_s if timeout_s is _UNSET else timeout_s)
        unique = cls.unique if unique is _UNSET else unique
        if unique is not None and not isinstance(unique, Unique):
            raise InvalidJob(f"unique must be a Unique(...) or None, not {unique!r}")
        self.unique = unique
        self.tags = check_tags(cls.tags if tags is _UNSET else tags)
        if backoff is not None and not callable(backoff):
            raise InvalidJob(f"backoff must be a function of the job, not {backoff!r}")
        self._backoff = backoff
        self.is_async = _is_async(self.perform)

    def perform(self, job: Job) -> Any:
        """Do the work of ``job``. Return a result (the job is completed) or a
        :class:`~trunkline.jobs.Snooze`, :class:`~trunkline.jobs.Discard` or
        :class:`~trunkline.jobs.Cancel`; raise to fail the attempt."""
        raise NotImplementedError(f"worker {self.name!r} must define perform(job)")

    def backoff(self, job: Job) -> float:
        """Seconds to wait before the next attempt of ``job``, whose attempt
        ``job.attempt`` just failed: the ``backoff`` option's if one was given, else
        :func:`trunkline.jobs.backoff.exponential`."""
        if self._backoff is not None:
            return self._backoff(job)
        return _backoff.exponential(job.attempt, job.max_attempts)

    def new(
        self,
        args: Any = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        scheduled_at: datetime | None = None,
        in_s: float | None = None,
        meta: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        unique: Unique | None = _UNSET,
    ) -> NewJob:
        """A job of this worker, with its defaults and these overrides; see
        :func:`~trunkline.jobs.new_job` for the options.

        Raises:
            InvalidJob: the arguments are not JSON, or an option is invalid.
        """
        return NewJob(
            self.name,
            {} if args is None else args,
            self.queue if queue is None else queue,
            self.priority if priority is None else priority,
            self.max_attempts if max_attempts is None else max_attempts,
            scheduled_at,
            in_s,
            {} if meta is None else meta,
            self.tags if tags is None else tags,
            self.unique if unique is _UNSET else unique,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.name!r} queue={self.queue!r}>"


class FunctionWorker(Worker):
    """A worker made from a function by :func:`worker`; calling it calls the function."""

    def __init__(self, function: Perform, **options: Any) -> None:
        if not callable(function):
            raise InvalidJob(f"a worker needs a function of the job, not {function!r}")
        self.function = function
        name = options.pop("name", None)
        if name is None:
            name = f"{function.__module__}.{function.__qualname__}"
        super().__init__(name=name, **options)
        self.is_async = _is_async(function)
        self.__doc__ = function.__doc__
        self.__wrapped__ = function

    def perform(self, job: Job) -> Any:
        return self.function(job)

    def __call__(self, job: Job) -> Any:
        return self.function(job)


@overload
def worker(function: Perform, /) -> FunctionWorker: ...


@overload
def worker(
    *,
    name: str | None = None,
    queue: str = ...,
    max_attempts: int = ...,
    priority: int = ...,
    timeout_s: float | None = ...,
    unique: Unique | None = ...,
    tags: Sequence[str] = ...,
    backoff: Backoff | None = None,
) -> Callable[[Perform], FunctionWorker]: ...


def worker(
    function: Perform | None = None, /, **options: Any
) -> FunctionWorker | Callable[[Perform], FunctionWorker]:
    """Make a worker of a function of the job: ``@worker`` or ``@worker(queue="mail", ...)``.

    The options are those of :class:`Worker`; the name defaults to
    ``"<module>.<function qualname>"``. Register the worker in a
    :class:`~trunkline.jobs.WorkerRegistry` for a node to run it (or use
    :meth:`WorkerRegistry.worker <trunkline.jobs.WorkerRegistry.worker>`, which does both).

    Raises:
        InvalidJob: an option is invalid.
    """
    if function is not None:
        return FunctionWorker(function, **options)
    check_options(options)

    def decorate(fn: Perform) -> FunctionWorker:
        return FunctionWorker(fn, **options)

    return decorate


def check_options(options: Mapping[str, Any]) -> None:
    """Check a worker's options now, where the decorator is written, not at first use.

    Raises:
        InvalidJob: an option is invalid.
    """
    Worker(**{**options, "name": options.get("name") or "check"})


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidJob(f"timeout_s must be None or seconds > 0, not {value!r}")
    return float(value)
