"""The one clock that everything time-based in trunkline reads.

Timeouts, timers, backoff, cron and quiet hours all ask the node's :class:`Clock`: monotonic
seconds for durations (:meth:`Clock.monotonic`), aware UTC datetimes for the calendar
(:meth:`Clock.now`), and :meth:`Clock.call_later` for scheduling.

:class:`SystemClock` is the real thing. :class:`MockClock` is for tests: it owns an event loop
whose time is virtual, so *everything* on that loop - our timers, ``asyncio.sleep``,
``asyncio.wait_for`` in user code - runs on mock time. Time moves only when a test calls
:meth:`MockClock.jump`, or, with ``autojump`` on, as soon as every task on the loop is waiting:
the loop then skips straight to the next timer instead of sleeping. A test of a 30 s backoff
runs in microseconds and sees exactly the same ordering as production would::

    clock = MockClock()
    loop = clock.new_event_loop()
    loop.run_until_complete(main())   # asyncio.sleep(3600) inside returns at once
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    """What the runtime needs from a clock."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware, in UTC."""
        ...

    def call_later(
        self, delay_s: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` on the event loop after ``delay_s`` seconds."""
        ...


class SystemClock:
    """The real clock: the running loop's monotonic time and the system's wall time."""

    __slots__ = ("_loop", "monotonic")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        # The loop's own method, not a wrapper: call timeouts read it on every call.
        self.monotonic: Callable[[], float] = self._loop.time

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(
        self, delay_s: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        return self._loop.call_later(delay_s, callback, *args)

    def __repr__(self) -> str:
        return "SystemClock()"


class MockClock:
    """Virtual time for tests.

    Args:
        start: the wall-clock time at virtual time zero (default 2026-01-01 00:00 UTC).
        autojump: when true, time skips ahead to the next timer as soon as the loop has nothing
            to run and no I/O arrives within ``autojump_threshold_s`` real seconds.
        autojump_threshold_s: how long to wait for real I/O (sockets, threads) before jumping.
            ``0`` suits tests of pure in-process logic; raise it for tests that also wait on a
            real database so that its replies are not outrun by virtual timeouts.

    Example::

        clock = MockClock(autojump=False)
        loop = clock.new_event_loop()
        ...
        clock.jump(5.0)      # timers due in the next 5 s fire on the loop's next turn
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        autojump: bool = True,
        autojump_threshold_s: float = 0.0,
    ) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("MockClock start must be timezone-aware")
        if autojump_threshold_s < 0:
            raise ValueError("autojump_threshold_s must be >= 0")
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._time = 0.0
        self.autojump = autojump
        self.autojump_threshold_s = autojump_threshold_s
        self._loop: asyncio.AbstractEventLoop | None = None

    def monotonic(self) -> float:
        return self._time

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._time)

    def call_later(
        self, delay_s: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        if self._loop is None:
            raise RuntimeError("MockClock has no loop yet: call new_event_loop() first")
        return self._loop.call_later(delay_s, callback, *args)

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds``; timers now due run on the loop's next turn."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._time += seconds

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A new event loop that runs on this clock's virtual time."""
        loop = _MockLoop(self)
        self._loop = loop
        return loop

    def __repr__(self) -> str:
        return f"MockClock(now={self.now().isoformat()}, autojump={self.autojump})"


class _JumpingSelector(selectors.BaseSelector):
    """Wraps the loop's real selector; where the loop would sleep, it jumps virtual time."""

    def __init__(self, inner: selectors.BaseSelector, clock: MockClock) -> None:
        self._inner = inner
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        clock = self._clock
        if timeout is None or timeout <= 0 or not clock.autojump:
            # Nothing scheduled, or something ready now, or jumping is off: real behaviour.
            # With jumping off, a test moves time with jump(); poll so the loop notices.
            if not clock.autojump and timeout is not None and timeout > 0:
                timeout = min(timeout, 0.001)
            return self._inner.select(timeout)
        events = self._inner.select(min(timeout, clock.autojump_threshold_s))
        if not events:
            clock._time += timeout
        return events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class _MockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is a :class:`MockClock`'s virtual time."""

    def __init__(self, clock: MockClock) -> None:
        self._mock_clock = clock
        super().__init__(_JumpingSelector(selectors.DefaultSelector(), clock))

    def time(self) -> float:
        return self._mock_clock._time
