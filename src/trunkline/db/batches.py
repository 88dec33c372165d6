"""Concurrent calls of one kind, run a batch at a time: group commit without a timer.

Many tasks that each need the same small statement (take this delivery, record that one as
sent) would each pay a round trip, a transaction and a commit. :class:`Batches` gathers
them instead: a call made while no batch runs starts one at once, with whatever else is
waiting; calls made while a batch runs wait for it to end and go together in the next. A
lone call waits for nothing, and the batches grow with the load. With ``lanes`` above one,
that many batches may run at once (each a transaction of its own, say): a call starts a
batch whenever a lane is free.

``run`` gets the items of a batch, in the order they came, and returns one result per item,
in the same order. If it raises, every call of that batch raises the same error. A caller
that stops waiting (cancelled, timed out) leaves its item in the batch if the batch has
started: the statement runs for it all the same, which the statements this is for allow (a
taken delivery is taken again by the job's retry; a record written is the truth).

The batches of a lane run in a task of its own on the loop of the call that started it; it
ends when nobody waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batches"]

log = logging.getLogger("trunkline.db")

T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    """Runs concurrent calls in batches; see the module documentation.

    Args:
        run: runs one batch: the items in, one result per item out, in order.
        max_batch: the most items a batch holds; the rest wait for the next.
        lanes: the most batches that run at once.

    Example::

        takes = Batches(lambda ids: take_many(database, ids))
        row = await takes.call(delivery_id)   # with every other take made meanwhile
    """

    __slots__ = ("_lanes", "_max_batch", "_run", "_running", "_waiting")

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 256,
        lanes: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch!r}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes!r}")
        self._run = run
        self._max_batch = max_batch
        self._lanes = lanes
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()  # a task per busy lane

    async def call(self, item: T) -> R:
        """``item``'s result, from the batch it goes in."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        running = self._running
        if len(running) >= self._lanes:
            # A lane whose loop closed under it never reached its ``finally``: it is done,
            # or left pending on a loop that will not run it again.
            running.difference_update(
                [task for task in running if task.done() or task.get_loop() is not loop]
            )
        if len(running) < self._lanes:
            running.add(loop.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        lane = asyncio.current_task()
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                waiting = self._waiting
                batch = [entry for entry in waiting[: self._max_batch] if not entry[1].done()]
                self._waiting = waiting[self._max_batch :]
                if not batch:
                    continue  # every caller of these gave up before they started
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
            batch = []
        except GeneratorExit:
            raise  # closed with its loop, never to run again: nobody is left to tell
        except BaseException as error:
            # A bug in ``run``, or the loop closing: nobody may be left waiting.
            for _, future in (*batch, *self._waiting):
                if future.done():
                    continue
                if isinstance(error, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(error)
            self._waiting = []
            if isinstance(error, asyncio.CancelledError):
                raise
            log.error("a batch failed", exc_info=True)  # its callers have the error too
        finally:
            # At once, not in a done callback: a call made after this lane found nothing
            # waiting must find the lane free.
            self._running.discard(lane)
