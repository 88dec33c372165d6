"""The workers a node runs, by name: a :class:`WorkerRegistry`.

A registry is a plain object, made explicitly and handed to :class:`~trunkline.jobs.Jobs`
(and to the testing helpers): nothing global, so that tests and several job systems in one
process each have their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from .exceptions import InvalidJob, UnknownWorker, WorkerExists
from .unique import Unique
from .worker import Backoff, FunctionWorker, Perform, Worker, check_options

__all__ = ["WorkerRegistry"]


class WorkerRegistry:
    """Workers by name.

    Args:
        workers: workers to register at once.

    Raises:
        WorkerExists: two workers share a name.

    Example::

        registry = WorkerRegistry()

        @registry.worker(queue="mail")
        async def send_welcome(job): ...

        registry.register(Resize())
        registry["app.workers.Resize"]          # the worker, or UnknownWorker
    """

    def __init__(self, workers: Iterable[Worker] = ()) -> None:
        self._workers: dict[str, Worker] = {}
        for worker in workers:
            self.register(worker)

    def register(self, worker: Worker) -> Worker:
        """Register ``worker`` under its name; return it (so it can decorate).

        Registering the same worker again does nothing.

        Raises:
            WorkerExists: another worker holds the name.
            InvalidJob: ``worker`` is not a :class:`~trunkline.jobs.Worker`.
        """
        if not isinstance(worker, Worker):
            raise InvalidJob(
                f"register takes a Worker (a subclass instance, or made with @worker), "
                f"not {worker!r}"
            )
        held = self._workers.get(worker.name)
        if held is not None and held is not worker:
            raise WorkerExists(f"a worker named {worker.name!r} is registered already: {held!r}")
        self._workers[worker.name] = worker
        return worker

    @overload
    def worker(self, function: Perform, /) -> FunctionWorker: ...

    @overload
    def worker(
        self,
        /,
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
        self, function: Perform | None = None, /, **options: Any
    ) -> FunctionWorker | Callable[[Perform], FunctionWorker]:
        """:func:`~trunkline.jobs.worker`, registering the worker it makes.

        Raises:
            InvalidJob: an option is invalid.
            WorkerExists: the worker's name is taken.
        """
        if function is not None:
            made = FunctionWorker(function, **options)
            self.register(made)
            return made
        check_options(options)

        def decorate(fn: Perform) -> FunctionWorker:
            made = FunctionWorker(fn, **options)
            self.register(made)
            return made

        return decorate

    def get(self, name: str) -> Worker | None:
        """The worker registered as ``name``, or ``None``."""
        return self._workers.get(name)

    def __getitem__(self, name: str) -> Worker:
        """The worker registered as ``name``.

        Raises:
            UnknownWorker: none is.
        """
        worker = self._workers.get(name)
        if worker is None:
            raise UnknownWorker(f"no worker named {name!r} is registered")
        return worker

    def __contains__(self, name: object) -> bool:
        return name in self._workers

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def __len__(self) -> int:
        return len(self._workers)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._workers)

    def __repr__(self) -> str:
        return f"<WorkerRegistry {len(self._workers)} workers>"
