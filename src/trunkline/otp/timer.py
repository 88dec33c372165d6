"""Timers: a message or a call, later, on the node's clock - ``erlang:send_after`` and friends.

:func:`send_after` puts a message in a mailbox after a delay, :func:`send_interval` does it
again and again, :func:`apply_after` calls a function. Each returns a :class:`TimerRef` for
:func:`read_timer` (seconds left) and :func:`cancel_timer`.

As in Erlang:

- A destination given as a pid binds the timer to that process: when it dies, the timer is
  cancelled (nothing is delivered, :func:`read_timer` says ``None``, and the message is let
  go at once, not kept until the timer was due). A name is looked up when the timer fires,
  so the message goes to whoever holds the name then, or nowhere.
- Even with a delay of ``0`` the message is not sent at once: the receiver may get other
  messages first.
- An interval belongs to the process that starts it and stops when that process ends.

Every timer is scheduled with the node's :class:`~trunkline.otp.Clock`, so tests drive them
with a :class:`~trunkline.otp.MockClock` instead of sleeping.

Example::

    ref = send_after(30, self(), "tick")
    ...
    if cancel_timer(ref) is None:         # fired already: "tick" is in the mailbox
        await receive(lambda m: m == "tick", timeout=0)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from .clock import Clock
from .node import Node, current_node
from .process import Pid, Ref, Via, add_exit_hook, remove_exit_hook, resolve, spawn
from .process import self as self_pid

__all__ = [
    "TimerRef",
    "apply_after",
    "cancel_timer",
    "read_timer",
    "send_after",
    "send_interval",
]

log = logging.getLogger("trunkline.otp")


class TimerRef(Ref):
    """Identifies a timer for :func:`read_timer` and :func:`cancel_timer`; prints as a Ref."""

    __slots__ = ("_clock", "_dest", "_due", "_handle", "_interval_s", "_starter")

    def __init__(self, node: Node, delay_s: float) -> None:
        super().__init__(node)
        self._clock: Clock = node.clock
        self._due = self._clock.monotonic() + delay_s
        self._handle: asyncio.TimerHandle | None = None
        self._interval_s: float | None = None
        # The processes whose end cancels the timer: a pid destination, an interval's
        # starter. Each holds an exit hook keyed by this ref until the timer is done.
        self._dest: Pid | None = None
        self._starter: Pid | None = None

    def _pending(self) -> bool:
        return self._handle is not None

    def _bind_dest(self, pid: Pid) -> bool:
        """Cancel this timer when ``pid`` ends; ``False`` if it has ended already."""
        if not add_exit_hook(pid, self, self._bound_exited):
            return False
        self._dest = pid
        return True

    def _bind_starter(self, pid: Pid) -> None:
        add_exit_hook(pid, self, self._bound_exited)
        self._starter = pid

    def _stop(self) -> None:
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()  # drops the callback's arguments, and the message with them
        self._unbind()

    def _unbind(self) -> None:
        if self._dest is not None:
            remove_exit_hook(self._dest, self)
            self._dest = None
        if self._starter is not None:
            remove_exit_hook(self._starter, self)
            self._starter = None

    def _bound_exited(self, pid: Pid, reason: Any) -> None:
        # The destination or the starter ended (one hook serves both when they are one).
        self._stop()


def send_after(delay_s: float, dest: Pid | Via | Hashable, message: Any) -> TimerRef:
    """Send ``message`` to ``dest`` after ``delay_s`` seconds.

    Args:
        delay_s: seconds from now, ``>= 0``.
        dest: a pid (the timer dies with it), or a name or :class:`~trunkline.otp.Via`
            looked up when the timer fires (no one there: the message is dropped).
        message: any term.

    Raises:
        ValueError: ``delay_s`` is negative.
    """
    _check_delay(delay_s)
    node = current_node()
    ref = TimerRef(node, delay_s)
    if type(dest) is Pid and not ref._bind_dest(dest):
        return ref  # to a dead process: cancelled before it starts, as in Erlang
    ref._handle = node.clock.call_later(delay_s, _send, ref, dest, message)
    return ref


def send_interval(interval_s: float, dest: Pid | Via | Hashable, message: Any) -> TimerRef:
    """Send ``message`` to ``dest`` every ``interval_s`` seconds, from now on.

    The interval stops when :func:`cancel_timer` is called, when the calling process ends
    (as Erlang's ``timer:send_interval``, which is linked to its caller) and when ``dest``,
    given as a pid, ends. Ticks keep to the schedule: a late tick does not delay the next.

    Raises:
        ValueError: ``interval_s`` is not positive.
        NotAProcess: called outside any task.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0; got {interval_s!r}")
    starter = self_pid()
    node = starter._node
    ref = TimerRef(node, interval_s)
    ref._interval_s = interval_s
    if type(dest) is Pid and not ref._bind_dest(dest):
        return ref  # to a dead process: cancelled before it starts
    ref._bind_starter(starter)
    ref._handle = node.clock.call_later(interval_s, _tick, ref, dest, message)
    return ref


def apply_after(delay_s: float, fn: Callable[..., object], *args: Any) -> TimerRef:
    """Call ``fn(*args)`` after ``delay_s`` seconds.

    A plain function runs in the event loop's callback, outside any process: keep it short,
    and note that an exception it raises is logged, not propagated. An ``async`` function
    (or one that returns a coroutine) runs as a new process, as Erlang's
    ``timer:apply_after`` spawns one.

    Raises:
        ValueError: ``delay_s`` is negative.
    """
    _check_delay(delay_s)
    node = current_node()
    ref = TimerRef(node, delay_s)
    ref._handle = node.clock.call_later(delay_s, _apply, ref, fn, args)
    return ref


def read_timer(ref: TimerRef) -> float | None:
    """Seconds until ``ref`` fires (the next tick, for an interval), or ``None``.

    ``None`` means the timer has fired, was cancelled, or its destination pid is dead.
    """
    if not ref._pending():
        return None
    return max(0.0, ref._due - ref._clock.monotonic())


def cancel_timer(ref: TimerRef) -> float | None:
    """Cancel ``ref``; return the seconds it had left, or ``None`` if it was not pending.

    A message that was already delivered stays in the mailbox: when this returns ``None``
    for a :func:`send_after` to the caller, the message is there or on its way.
    """
    left = read_timer(ref)
    ref._stop()
    return left


def _check_delay(delay_s: float) -> None:
    if not delay_s >= 0:
        raise ValueError(f"delay_s must be >= 0; got {delay_s!r}")


def _send_to(dest: Pid | Via | Hashable, message: Any) -> None:
    pid = dest if type(dest) is Pid else resolve(dest)
    if pid is not None:
        pid._deliver(message)


def _send(ref: TimerRef, dest: Pid | Via | Hashable, message: Any) -> None:
    ref._handle = None
    if ref._dest is not None:
        ref._unbind()
    _send_to(dest, message)


def _tick(ref: TimerRef, dest: Pid | Via | Hashable, message: Any) -> None:
    assert ref._interval_s is not None
    # The next tick is due one interval after this one was, however late this one runs.
    ref._due += ref._interval_s
    clock = ref._clock
    ref._handle = clock.call_later(
        max(0.0, ref._due - clock.monotonic()), _tick, ref, dest, message
    )
    _send_to(dest, message)


def _apply(ref: TimerRef, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    ref._handle = None
    try:
        result = fn(*args)
    except Exception:
        log.exception("apply_after: %r failed", fn)
        return
    if inspect.iscoroutine(result):
        spawn(_await, result)


async def _await(coroutine: Coroutine[Any, Any, Any]) -> None:
    await coroutine
