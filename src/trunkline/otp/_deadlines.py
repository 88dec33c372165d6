"""Call timeouts without a timer per call.

Nearly every ``call`` waits with the same timeout (5 s by default), so deadlines for one timeout
value are added in increasing order. Each value gets a FIFO of ``(deadline, future)`` and a
single timer for its oldest entry; entries whose future is already resolved are dropped from the
head as new ones arrive. A call then costs a tuple and a deque append instead of a timer-heap
insert and cancel, which is a fifth of a round trip on uvloop.

Timeouts outside the few most common values fall back to one ordinary timer each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .clock import Clock

# The futures of timed-out waits are resolved with this marker (shared with process.py).
TIMEOUT = object()

_MAX_QUEUES = 32


class _Queue:
    __slots__ = ("entries", "timeout_s", "timer")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.entries: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.timer: asyncio.TimerHandle | None = None


class Deadlines:
    """Resolves futures with :data:`TIMEOUT` when their deadline passes on ``clock``."""

    __slots__ = ("_clock", "_queues", "_time")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._time = clock.monotonic
        self._queues: dict[float, _Queue] = {}

    def add(self, timeout_s: float, future: asyncio.Future[Any]) -> None:
        """Resolve ``future`` with :data:`TIMEOUT` in ``timeout_s`` unless done by then."""
        queue = self._queues.get(timeout_s)
        if queue is None:
            if len(self._queues) >= _MAX_QUEUES or timeout_s <= 0:
                handle = self._clock.call_later(timeout_s, expire, future)
                future.add_done_callback(lambda _: handle.cancel())
                return
            queue = self._queues[timeout_s] = _Queue(timeout_s)
        entries = queue.entries
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((self._time() + timeout_s, future))
        if queue.timer is None:
            queue.timer = self._clock.call_later(timeout_s, self._sweep, queue)

    def _sweep(self, queue: _Queue) -> None:
        queue.timer = None
        entries = queue.entries
        now = self._time()
        while entries:
            deadline, future = entries[0]
            if future.done():
                entries.popleft()
            elif deadline <= now:
                entries.popleft()
                future.set_result(TIMEOUT)
            else:
                queue.timer = self._clock.call_later(deadline - now, self._sweep, queue)
                return
        # Idle queues give their slot back, so that one-off timeout values cannot take all
        # the slots for good.
        del self._queues[queue.timeout_s]


def expire(future: asyncio.Future[Any]) -> None:
    """Resolve ``future`` with :data:`TIMEOUT` if nothing else did first."""
    if not future.done():
        future.set_result(TIMEOUT)
