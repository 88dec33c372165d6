"""Telemetry events: a name, some measurements, some metadata, and the handlers that want them.

A port of Erlang's ``:telemetry``. Code that does something worth measuring *executes* an event;
code that wants to know *attaches* a handler to it. Neither knows about the other, so libraries
can be instrumented once and observed by whatever the application plugs in: metrics reporters,
loggers, tracers, tests.

- An event name is a tuple of strings, e.g. ``("trunkline", "jobs", "job", "stop")``.
- Measurements are a dict of numbers (``{"duration": 0.042}``); metadata is a dict of anything
  that describes the event (``{"queue": "mailers", "job": job}``).
- Handlers are called synchronously, in the task that executes the event, in the order they
  were attached: keep them fast, and hand slow work to a process (``send`` it a message).
- Handlers are global to the OS process, like ``:telemetry``'s: attach once, detach when done.
- A handler that raises is detached, the failure is logged with the handler id and the event,
  and the event ``("telemetry", "handler", "failure")`` is executed; :func:`execute` itself
  never raises. Only ``Exception``\\ s are handler failures: ``KeyboardInterrupt``,
  ``SystemExit``, cancellation and ``ProcessExit`` propagate, as they end the caller, not the
  handler.

Times are seconds, as floats, read from the node's clock (a :class:`~trunkline.otp.MockClock`
in tests) when an event loop is running: ``duration`` and ``monotonic_time`` from
``clock.monotonic()``, ``system_time`` (seconds since the Unix epoch) from ``clock.now()``.

Example::

    def log_slow_jobs(event, measurements, metadata, config):
        if measurements["duration"] > config["threshold_s"]:
            log.warning("slow job %s: %.3fs", metadata["job"], measurements["duration"])

    telemetry.attach("slow-jobs", ("app", "job", "stop"), log_slow_jobs, {"threshold_s": 1.0})

    with telemetry.span(("app", "job"), {"job": "resize"}) as span:
        rows = resize_images()
        span.measure(rows=rows)
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias

from .clock import Clock
from .exceptions import HandlerExists, NoNode, ProcessExit
from .node import current_node
from .process import KILLED, _current_pid

__all__ = [
    "HANDLER_FAILURE",
    "Emitted",
    "Event",
    "Handler",
    "HandlerFunction",
    "Span",
    "attach",
    "attach_many",
    "attached",
    "capture",
    "detach",
    "execute",
    "has_handlers",
    "list_handlers",
    "span",
]

log = logging.getLogger("trunkline.otp.telemetry")

Event: TypeAlias = tuple[str, ...]
HandlerFunction: TypeAlias = Callable[[Event, Mapping[str, Any], Mapping[str, Any], Any], object]

HANDLER_FAILURE: Event = ("telemetry", "handler", "failure")
"""Executed when a handler raised and was detached.

Measurements ``monotonic_time`` and ``system_time``; metadata ``event_name``, ``handler_id``,
``handler_config``, ``kind`` (``"error"``), ``reason`` (the exception) and ``stacktrace``.
"""


@dataclass(frozen=True, slots=True)
class Handler:
    """One handler attached to one event, as :func:`list_handlers` reports it."""

    id: Hashable
    event: Event
    function: HandlerFunction
    config: Any


# The handler table. Writers (attach/detach) take the lock and replace whole tuples; readers
# (execute) take no lock: a dict lookup returns a tuple that nobody mutates. So an event with
# no handlers costs one dict lookup, and one with handlers a lookup and a loop.
_lock = threading.Lock()
_by_id: dict[Hashable, tuple[Handler, ...]] = {}
_by_event: dict[Event, tuple[Handler, ...]] = {}


# -- handlers ----------------------------------------------------------------------------------


def attach(
    handler_id: Hashable, event: Event, function: HandlerFunction, config: Any = None
) -> None:
    """Call ``function(event, measurements, metadata, config)`` whenever ``event`` is executed.

    Args:
        handler_id: a unique, hashable id, used to detach the handler.
        event: the event name, a non-empty tuple of strings.
        function: a plain (not ``async``) function; it runs in the task executing the event.
        config: passed to every call as the fourth argument.

    Raises:
        HandlerExists: a handler with this id is already attached.
        TypeError: ``event`` is not a tuple of strings, or ``function`` is not a plain
            callable.
    """
    attach_many(handler_id, (event,), function, config)


def attach_many(
    handler_id: Hashable, events: Iterable[Event], function: HandlerFunction, config: Any = None
) -> None:
    """Attach one handler to several events; :func:`detach` removes it from all of them.

    If the handler fails on any of the events, it is detached from all of them.

    Raises:
        HandlerExists: a handler with this id is already attached.
        TypeError: an event is not a tuple of strings, or ``function`` is not a plain callable.
        ValueError: ``events`` is empty.
    """
    names = _check_events(events)
    _check_function(function)
    entries = tuple(Handler(handler_id, name, function, config) for name in names)
    with _lock:
        if handler_id in _by_id:
            raise HandlerExists(handler_id)
        _by_id[handler_id] = entries
        for entry in entries:
            _by_event[entry.event] = (*_by_event.get(entry.event, ()), entry)


def detach(handler_id: Hashable) -> bool:
    """Detach the handler ``handler_id`` from all its events.

    Returns:
        whether it was attached (``:telemetry`` answers ``{error, not_found}`` otherwise).
    """
    with _lock:
        entries = _by_id.pop(handler_id, None)
        if entries is None:
            return False
        for entry in entries:
            remaining = tuple(other for other in _by_event[entry.event] if other is not entry)
            if remaining:
                _by_event[entry.event] = remaining
            else:
                del _by_event[entry.event]
    return True


def list_handlers(prefix: Event = ()) -> list[Handler]:
    """The handlers attached to events that start with ``prefix`` (``()``: all of them).

    A handler attached to several events is listed once per event, in the order of attaching.

    Raises:
        TypeError: ``prefix`` is not a tuple.
    """
    if type(prefix) is not tuple:
        raise TypeError(f"an event prefix is a tuple of strings, got {prefix!r}")
    size = len(prefix)
    with _lock:
        return [
            entry
            for entries in _by_id.values()
            for entry in entries
            if entry.event[:size] == prefix
        ]


@contextmanager
def attached(
    handler_id: Hashable, events: Iterable[Event], function: HandlerFunction, config: Any = None
) -> Iterator[None]:
    """Attach a handler for the duration of a ``with`` block; for tests and scripts.

    Example::

        with telemetry.attached("probe", [("app", "job", "stop")], record):
            await run_job()
    """
    attach_many(handler_id, events, function, config)
    try:
        yield
    finally:
        detach(handler_id)


class Emitted(NamedTuple):
    """An event seen by :func:`capture`."""

    event: Event
    measurements: Mapping[str, Any]
    metadata: Mapping[str, Any]


@contextmanager
def capture(events: Iterable[Event]) -> Iterator[list[Emitted]]:
    """Record the given events, in order, for the duration of a ``with`` block.

    Example::

        with telemetry.capture([("app", "job", "stop")]) as seen:
            await run_job()
        assert [e.metadata["job"] for e in seen] == ["resize"]
    """
    seen: list[Emitted] = []

    def record(
        event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], _: Any
    ) -> None:
        seen.append(Emitted(event, measurements, metadata))

    with attached(("trunkline.telemetry.capture", object()), events, record):
        yield seen


def _check_events(events: Iterable[Event]) -> tuple[Event, ...]:
    if isinstance(events, str):
        raise TypeError(f"expected a list of events, got the string {events!r}")
    names = tuple(dict.fromkeys(events))  # dedupe, keep order
    if not names:
        raise ValueError("attach_many needs at least one event")
    for name in names:
        if not (type(name) is tuple and name and all(type(part) is str and part for part in name)):
            raise TypeError(
                f"an event name is a non-empty tuple of non-empty strings, such as "
                f"('app', 'request', 'stop'); got {name!r}"
            )
    return names


def _check_function(function: object) -> None:
    if not callable(function):
        raise TypeError(f"a handler must be callable, got {function!r}")
    if inspect.iscoroutinefunction(function):
        # Its coroutine would never be awaited: handlers run inside execute(), which is sync.
        raise TypeError(
            f"handler {function!r} is async; handlers run synchronously in the emitting task "
            "(send a message to a process, or create a task, for slow work)"
        )


# -- executing events --------------------------------------------------------------------------


def has_handlers(event: Event) -> bool:
    """Whether any handler is attached to ``event``: one dict lookup.

    For hot paths that would build measurements or metadata only to have nobody read them.
    """
    return event in _by_event


def execute(
    event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> None:
    """Call every handler attached to ``event``, in the caller's task; never raises.

    A handler that raises is detached (from all its events) and the failure is logged; see
    the module documentation.

    Args:
        event: the event name, a tuple of strings.
        measurements: numbers describing the event, e.g. ``{"duration": 0.2}``.
        metadata: anything else, e.g. ``{"queue": "default"}``; ``{}`` by default.
    """
    handlers = _by_event.get(event)
    if handlers is None:
        return
    if metadata is None:
        metadata = {}
    for handler in handlers:
        try:
            handler.function(event, measurements, metadata, handler.config)
        except Exception as error:
            _handler_failed(handler, event, error)


def _handler_failed(handler: Handler, event: Event, error: Exception) -> None:
    detach(handler.id)
    log.error(
        "telemetry handler %r failed on event %r and was detached",
        handler.id,
        event,
        exc_info=error,
        extra={"handler_id": handler.id, "event_name": event},
    )
    monotonic_s, system_s = _now()
    execute(
        HANDLER_FAILURE,
        {"monotonic_time": monotonic_s, "system_time": system_s},
        {
            "event_name": event,
            "handler_id": handler.id,
            "handler_config": handler.config,
            "kind": "error",
            "reason": error,
            "stacktrace": traceback.extract_tb(error.__traceback__),
        },
    )


def _clock() -> Clock | None:
    try:
        return current_node().clock
    except NoNode:
        return None


def _now() -> tuple[float, float]:
    clock = _clock()
    if clock is None:
        return time.monotonic(), time.time()
    return clock.monotonic(), clock.now().timestamp()


# -- spans -------------------------------------------------------------------------------------

_span_ids = itertools.count(1)


class Span:
    """A timed block of work: executes ``prefix + ("start",)``, then ``("stop",)`` or
    ``("exception",)``. Make one with :func:`span`; use it as a ``with`` or ``async with``.

    Events (all times in seconds, as floats; see the module documentation for the clock):

    ``prefix + ("start",)``
        measurements ``monotonic_time``, ``system_time``; metadata: the start metadata plus
        ``telemetry_span_context``.
    ``prefix + ("stop",)``
        measurements ``duration``, ``monotonic_time`` and what the body added with
        :meth:`measure`; metadata: the start metadata updated by the body (:meth:`set`).
    ``prefix + ("exception",)``, when the body raises (the exception propagates)
        measurements as for stop; metadata as for stop plus ``kind``, ``reason`` and
        ``stacktrace`` (a :class:`traceback.StackSummary`). ``kind`` is ``"error"`` for an
        ``Exception`` (``reason`` is the exception) and ``"exit"`` for anything that ends the
        task instead: ``ProcessExit`` (``reason`` is its exit reason), cancellation (the
        process's exit reason when the runtime is killing it, else ``"killed"``),
        ``KeyboardInterrupt`` and the like (``reason`` is the exception).

    ``telemetry_span_context`` is a unique int correlating the start event with its stop or
    exception event, unless the start metadata brings its own. Unlike ``:telemetry``, whose
    stop metadata replaces the start metadata, the stop metadata here extends it.

    Attributes:
        metadata: the stop metadata; the body may change it.
        measurements: extra stop measurements; the body may add to it.
    """

    __slots__ = ("_clock", "_start_s", "measurements", "metadata", "prefix")

    def __init__(self, prefix: Event, metadata: Mapping[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.metadata.setdefault("telemetry_span_context", next(_span_ids))
        self.measurements: dict[str, Any] = {}
        self._clock: Clock | None = None
        self._start_s: float | None = None

    def set(self, **metadata: Any) -> None:
        """Add to (or change) the metadata of the stop or exception event."""
        self.metadata.update(metadata)

    def measure(self, **measurements: Any) -> None:
        """Add measurements to the stop or exception event, e.g. ``span.measure(rows=3)``."""
        self.measurements.update(measurements)

    def __enter__(self) -> Span:
        if self._start_s is not None:
            raise RuntimeError(f"span {self.prefix!r} was already entered")
        clock = self._clock = _clock()
        if clock is None:
            start_s, system_s = time.monotonic(), time.time()
        else:
            start_s, system_s = clock.monotonic(), clock.now().timestamp()
        self._start_s = start_s
        execute(
            (*self.prefix, "start"),
            {"monotonic_time": start_s, "system_time": system_s},
            dict(self.metadata),  # the body's changes are for the stop event, not this one
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        clock = self._clock
        end_s = time.monotonic() if clock is None else clock.monotonic()
        measurements = {
            **self.measurements,
            "duration": end_s - (self._start_s or 0.0),
            "monotonic_time": end_s,
        }
        if error is None:
            execute((*self.prefix, "stop"), measurements, self.metadata)
            return
        metadata = {
            **self.metadata,
            "kind": "error" if isinstance(error, Exception) else "exit",
            "reason": _reason(error),
            "stacktrace": traceback.extract_tb(tb),
        }
        execute((*self.prefix, "exception"), measurements, metadata)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, tb)

    def __repr__(self) -> str:
        return f"<Span {self.prefix!r} context={self.metadata.get('telemetry_span_context')!r}>"


def span(prefix: Event, metadata: Mapping[str, Any] | None = None) -> Span:
    """Time the body of a ``with`` or ``async with`` block as start/stop/exception events.

    Args:
        prefix: the event prefix, e.g. ``("trunkline", "jobs", "job")``.
        metadata: the start metadata, also the base of the stop and exception metadata.

    Example::

        async with telemetry.span(("app", "import"), {"file": name}) as span:
            rows = await load(name)
            span.measure(rows=len(rows))
            span.set(status="ok")

    See :class:`Span` for the events and their measurements and metadata.
    """
    return Span(prefix, metadata)


def _reason(error: BaseException) -> Any:
    if isinstance(error, ProcessExit):
        return error.reason
    if isinstance(error, asyncio.CancelledError):
        # When the runtime kills or shuts down a process it records the reason, then cancels.
        try:
            pid = _current_pid(current_node())
        except NoNode:
            pid = None
        if pid is not None and not pid._alive:
            return pid._reason
        return KILLED
    return error
