"""Stage: demand-driven pipelines with back-pressure, as Elixir's GenStage.

A stage is a process that produces events, consumes them, or both. Consumers *subscribe* to
producers and *ask* them for events; a producer never sends a subscription more events than it
has asked for, so a slow consumer slows its producers down instead of drowning in messages.

- A **producer** makes events when asked: its ``handle_demand(n)`` returns up to ``n`` events
  (fewer is fine: the rest of the demand stays pending). It may also emit events from any other
  callback; events nobody has asked for yet wait in its buffer.
- A **consumer** receives them in ``handle_events(events, from_)``, in batches of at most
  ``max_demand - min_demand``. It asks for ``max_demand`` events when it subscribes, and again
  each time its pending demand falls to ``min_demand``.
- A **producer_consumer** is both: ``handle_events`` returns the events it emits downstream,
  and it takes events from upstream only as fast as its own consumers ask.

A consumer may subscribe to several producers (each subscription has its own demand) and a
producer may have several consumers; its *dispatcher* decides who gets what (see
:mod:`trunkline.otp.dispatcher`). Events from one producer arrive in the order it emitted them.

Callbacks (each may be a plain or an ``async`` method):

``init(arg)``
    Return :class:`ProducerInit`, :class:`ProducerConsumerInit` or :class:`ConsumerInit` to
    choose the stage's type and options; :class:`~trunkline.otp.Ignore` or
    :class:`~trunkline.otp.Stop` as a GenServer's ``init``.
``handle_demand(demand)``
    Producers: consumers asked for ``demand`` more events. Return the events.
``handle_events(events, from_)``
    Consumers and producer_consumers: a batch from the subscription ``from_``.
``handle_subscribe(kind, options, subscription)``
    A subscription starts; ``kind`` is ``"producer"`` on the consumer side (it subscribed to a
    producer) and ``"consumer"`` on the producer side. Return ``"automatic"`` (the default) or,
    on the consumer side, ``"manual"``: the stage then asks for events itself with :func:`ask`.
``handle_cancel(cancellation, subscription)``
    A subscription ended: a :class:`Cancellation` says whether it was cancelled or the other
    side went down, and why.
``handle_call(request, from_)``, ``handle_cast(request)``, ``handle_info(message)``,
``handle_continue(term)``, ``terminate(reason)``
    As a GenServer's; stages answer :func:`~trunkline.otp.call` and
    :func:`~trunkline.otp.cast` like any server.

What the callbacks return:

- ``handle_demand``, ``handle_events``, ``handle_cancel``, ``handle_cast``, ``handle_info``,
  ``handle_continue``: ``None`` (nothing to emit), a ``list`` of events to emit,
  :class:`Emit` (events with ``continue_``/``timeout``), ``NoReply(...)``, or ``Stop(reason)``.
  Consumers emit nothing (emitted events are logged and dropped, as in GenStage).
- ``handle_call``: the reply value; ``Reply``, ``NoReply`` or ``Stop`` as for a GenServer; or
  ``Emit(events, reply=value)`` to emit events and then reply.

Cancellation, as in GenStage: a subscription's ``cancel`` option says what the consumer does
when it ends (its producer exits, or cancels): ``"permanent"`` (the default) consumers exit
with the same reason; ``"transient"`` ones only if the reason is abnormal (not ``"normal"``,
``"shutdown"`` or ``("shutdown", term)``); ``"temporary"`` ones carry on. When a consumer exits,
its producers drop its subscriptions and its pending demand.

Example, a counter feeding a doubler feeding a printer::

    class Counter(Stage):
        def init(self, start):
            self.next = start
            return ProducerInit()

        def handle_demand(self, demand):
            events = list(range(self.next, self.next + demand))
            self.next += demand
            return events

    class Doubler(Stage):
        def init(self, arg):
            return ProducerConsumerInit(subscribe_to=["counter"])

        def handle_events(self, events, from_):
            return [2 * e for e in events]

    class Printer(Stage):
        def init(self, arg):
            return ConsumerInit(subscribe_to=[("doubler", {"max_demand": 100})])

        def handle_events(self, events, from_):
            print(events)

    await Counter.start_link(0, name="counter")
    await Doubler.start_link(name="doubler")
    await Printer.start_link()
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from ._stage_protocol import (
    ASK,
    CANCEL,
    CANCELLED,
    EVENTS,
    REQUEST,
    SUBSCRIBE,
    CancelMode,
    Subscription,
    check_producer,
    subscription_options,
)
from ._stage_stream import stage_stream
from .dispatcher import StageDispatcher
from .exceptions import AlreadyStarted, StartError, StartIgnored
from .gen_server import _CALL, _CAST, _STOP, call, cast
from .process import Pid, Via
from .telemetry import Event

__all__ = [
    "BUFFER_DISCARD",
    "CancelMode",
    "Cancellation",
    "ConsumerInit",
    "Emit",
    "ProducerConsumerInit",
    "ProducerInit",
    "Stage",
    "Subscription",
    "ask",
    "buffered_count",
    "cancel",
    "demand",
    "stage_stream",
    "subscribe",
]

log = logging.getLogger("trunkline.otp")

Server: TypeAlias = "Pid | Via | Hashable"

BUFFER_DISCARD: Event = ("trunkline", "otp", "stage", "discard")
"""Executed when a producer's buffer overflows and events are dropped.

Measurements ``count`` (events dropped now) and ``buffered`` (events left in the buffer);
metadata ``stage`` (the pid), ``name`` (its registered name or ``None``), ``module`` (the
stage's class), ``buffer_size`` and ``buffer_keep``.
"""

BufferKeep: TypeAlias = Literal["first", "last"]
DemandMode: TypeAlias = Literal["forward", "accumulate"]

_NO_REPLY: Any = object()


# -- what init returns ---------------------------------------------------------------------------


def _check_buffer(buffer_size: int | None, buffer_keep: str) -> None:
    if buffer_size is not None and (type(buffer_size) is not int or buffer_size < 0):
        raise ValueError(f"buffer_size must be None or an integer >= 0, not {buffer_size!r}")
    if buffer_keep not in ("first", "last"):
        raise ValueError(f"buffer_keep must be 'first' or 'last', not {buffer_keep!r}")


def _check_dispatcher(dispatcher: StageDispatcher | None) -> None:
    if dispatcher is not None and not isinstance(dispatcher, StageDispatcher):
        raise TypeError(
            f"dispatcher must be a StageDispatcher such as DemandDispatcher(), not {dispatcher!r}"
        )


def _subscriptions(subscribe_to: Sequence[Any]) -> tuple[tuple[Any, dict[str, Any]], ...]:
    if isinstance(subscribe_to, str | bytes) or not isinstance(subscribe_to, Sequence):
        raise TypeError(
            f"subscribe_to must be a list of producers or (producer, options), not {subscribe_to!r}"
        )
    entries = []
    for entry in subscribe_to:
        if type(entry) is tuple and len(entry) == 2 and isinstance(entry[1], Mapping):
            to, options = entry
        else:
            to, options = entry, {}
        check_producer(to)
        entries.append((to, subscription_options(options)))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class ProducerInit:
    """``init`` result of a producer.

    Attributes:
        dispatcher: shares events among consumers; a new
            :class:`~trunkline.otp.dispatchers.demand.DemandDispatcher` by default. Create it
            in ``init``: an instance serves one producer.
        buffer_size: events kept when emitted without demand (default 10,000); ``None`` for
            no limit. Events beyond it are dropped, logged and counted in the
            ``BUFFER_DISCARD`` telemetry event.
        buffer_keep: which to keep when the buffer is full: the ``"first"`` ones (new events
            are dropped) or the ``"last"`` ones (the oldest are dropped; the default).
        demand: ``"forward"`` (default) passes demand to ``handle_demand`` as it comes;
            ``"accumulate"`` holds it until :func:`demand` sets ``"forward"``, for instance
            until every consumer has subscribed.

    Raises:
        TypeError, ValueError: an invalid option, named in the message.
    """

    dispatcher: StageDispatcher | None = None
    buffer_size: int | None = 10_000
    buffer_keep: BufferKeep = "last"
    demand: DemandMode = "forward"

    def __post_init__(self) -> None:
        _check_dispatcher(self.dispatcher)
        _check_buffer(self.buffer_size, self.buffer_keep)
        if self.demand not in ("forward", "accumulate"):
            raise ValueError(f"demand must be 'forward' or 'accumulate', not {self.demand!r}")


@dataclass(frozen=True, slots=True)
class ProducerConsumerInit:
    """``init`` result of a producer_consumer.

    Attributes:
        subscribe_to: producers to subscribe to as the stage starts: each a producer (a pid, a
            name or a ``Via``) or ``(producer, options)``, with the options of
            :func:`subscribe`. A ``permanent`` or ``transient`` subscription to a producer
            that is not running fails the start with reason ``"noproc"``.
        dispatcher, buffer_keep: as for :class:`ProducerInit`.
        buffer_size: as for :class:`ProducerInit`, but no limit (``None``) by default.

    Raises:
        TypeError, ValueError: an invalid option, named in the message.
    """

    subscribe_to: Sequence[Any] = ()
    dispatcher: StageDispatcher | None = None
    buffer_size: int | None = None
    buffer_keep: BufferKeep = "last"

    def __post_init__(self) -> None:
        object.__setattr__(self, "subscribe_to", _subscriptions(self.subscribe_to))
        _check_dispatcher(self.dispatcher)
        _check_buffer(self.buffer_size, self.buffer_keep)


@dataclass(frozen=True, slots=True)
class ConsumerInit:
    """``init`` result of a consumer.

    Attributes:
        subscribe_to: as for :class:`ProducerConsumerInit`. Subscribing in ``init`` means a
            restarted consumer subscribes again by itself.

    Raises:
        TypeError, ValueError: an invalid option, named in the message.
    """

    subscribe_to: Sequence[Any] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "subscribe_to", _subscriptions(self.subscribe_to))


# -- what the other callbacks return -------------------------------------------------------------


class Emit:
    """Emit events from a callback, with options.

    From ``handle_call``, ``reply`` answers the caller after the events are dispatched (or
    buffered); without it the caller waits for :func:`~trunkline.otp.reply`. ``continue_`` and
    ``timeout`` are those of :class:`~trunkline.otp.NoReply`.

    Example::

        def handle_call(self, request, from_):
            match request:
                case ("notify", event):
                    return Emit([event], reply="ok")
    """

    __slots__ = ("continue_", "events", "reply", "timeout")

    def __init__(
        self,
        events: Sequence[Any] = (),
        *,
        reply: Any = _NO_REPLY,
        continue_: Any = None,
        timeout: float | None = None,
    ) -> None:
        self.events: list[Any] = events if type(events) is list else list(events)
        self.reply = reply
        self.continue_ = continue_
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Why a subscription ended, as ``handle_cancel`` receives it.

    Attributes:
        kind: ``"cancel"`` when a side cancelled it (:func:`cancel`, or the producer refused
            it), ``"down"`` when the other side exited.
        reason: the cancel reason, or the exit reason.
    """

    kind: Literal["cancel", "down"]
    reason: Any


# -- the behaviour ---------------------------------------------------------------------------------


class Stage:
    """Base class for stages; see the module documentation for the callbacks.

    Class attributes:
        trap_exit: trap exits from the start, so that a supervisor's shutdown runs
            ``terminate`` (default ``False``).

    Example, a producer of numbers and a consumer that sums them::

        class Numbers(Stage):
            def init(self, start: int) -> ProducerInit:
                self.next = start
                return ProducerInit()

            def handle_demand(self, demand: int) -> list[int]:
                events = list(range(self.next, self.next + demand))
                self.next += demand
                return events

        class Sum(Stage):
            def init(self, producer) -> ConsumerInit:
                self.total = 0
                return ConsumerInit(subscribe_to=[(producer, {"max_demand": 500})])

            def handle_events(self, events: list[int], from_: Subscription) -> None:
                self.total += sum(events)

            def handle_call(self, request, from_):
                return self.total

        numbers = await Numbers.start_link(0)
        total = await Sum.start_link(numbers)
    """

    trap_exit: ClassVar[bool] = False
    pid: Pid

    # -- callbacks (defaults) -----------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        raise TypeError(
            f"{type(self).__qualname__} must define init(arg) returning ProducerInit, "
            "ProducerConsumerInit or ConsumerInit"
        )

    def handle_demand(self, demand: int) -> Any:
        raise RuntimeError(f"{self._describe()} is a producer but defines no handle_demand")

    def handle_events(self, events: list[Any], from_: Subscription) -> Any:
        raise RuntimeError(f"{self._describe()} received events but defines no handle_events")

    def handle_subscribe(
        self,
        kind: Literal["producer", "consumer"],
        options: Mapping[str, Any],
        subscription: Subscription,
    ) -> Any:
        return "automatic"

    def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> Any:
        return None

    def handle_call(self, request: Any, from_: Any) -> Any:
        raise RuntimeError(
            f"{self._describe()} received call {request!r} but defines no handle_call"
        )

    def handle_cast(self, request: Any) -> Any:
        raise RuntimeError(
            f"{self._describe()} received cast {request!r} but defines no handle_cast"
        )

    def handle_info(self, message: Any) -> Any:
        log.warning("%s received unexpected message: %r", self._describe(), message)
        return None

    def handle_continue(self, term: Any) -> Any:
        raise RuntimeError(
            f"{self._describe()} returned continue {term!r} but defines no handle_continue"
        )

    def terminate(self, reason: Any) -> Any:
        return None

    # -- starting ------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        link: bool = False,
        timeout: float | None = 5.0,
    ) -> Pid:
        """Start the stage and wait for its ``init`` (and its ``subscribe_to``) to finish.

        Args:
            arg: passed to ``init``.
            name: a local name or a :class:`~trunkline.otp.Via` name to register.
            link: link the stage to the caller (see :meth:`start_link`).
            timeout: seconds ``init`` may take; after that the stage is killed.

        Raises:
            AlreadyStarted: ``name`` is held by a live process.
            StartIgnored: ``init`` returned :class:`~trunkline.otp.Ignore`.
            StartError: ``init`` returned ``Stop``, raised, returned something else than an
                init result, or timed out; or a ``permanent`` or ``transient`` subscription
                in ``subscribe_to`` found no producer (``reason`` ``"noproc"``).
        """
        from ._stage_server import server_class

        what = cls.__qualname__
        try:
            return await server_class(cls).start((cls, arg), name=name, link=link, timeout=timeout)
        except AlreadyStarted as e:
            raise AlreadyStarted(what, e.name, e.pid) from None
        except StartIgnored:
            raise StartIgnored(what) from None
        except StartError as e:
            raise StartError(what, e.reason) from None

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        timeout: float | None = 5.0,
    ) -> Pid:
        """:meth:`start`, linked to the caller: how a supervisor starts a stage.

        ``child_spec(MyStage, arg)`` gives a child spec for a supervisor.
        """
        return await cls.start(arg, name=name, link=True, timeout=timeout)

    # -- for logs and crash reports --------------------------------------------------------------

    def describe_message(self, message: Any) -> str:
        """How crash reports show a message this stage received."""
        if type(message) is tuple and message:
            tag = message[0]
            if len(message) == 3:
                if tag is EVENTS:
                    return f"{len(message[2])} events on {message[1]!r}"
                if tag is ASK:
                    return f"ask for {message[2]} on {message[1]!r}"
                if tag is SUBSCRIBE:
                    return f"subscribe {message[1]!r}"
                if tag is CANCEL or tag is CANCELLED:
                    return f"cancel {message[1]!r}: {message[2]!r}"
                if tag is _CALL:
                    return f"call {message[2]!r}"
            if tag is _CAST and len(message) == 2:
                return f"cast {message[1]!r}"
            if tag is _STOP and len(message) == 2:
                return f"stop {message[1]!r}"
        return repr(message)

    def _describe(self) -> str:
        pid = getattr(self, "pid", None)
        name = pid._name if pid is not None else None
        label = type(self).__qualname__
        return f"{label} {pid!r}" + (f" ({name!r})" if name is not None else "")


# -- client functions ------------------------------------------------------------------------------


async def subscribe(
    consumer: Server,
    *,
    to: Server,
    max_demand: int = 1000,
    min_demand: int | None = None,
    cancel: CancelMode = "permanent",
    timeout: float | None = 5.0,
    **options: Any,
) -> Subscription:
    """Subscribe ``consumer`` to the producer ``to``; return the subscription.

    Returns once the consumer has sent its subscription (and, unless its
    ``handle_subscribe`` chose manual demand, its first demand); the producer takes it in turn.

    Args:
        consumer: a consumer or producer_consumer (a pid, a name or a ``Via``).
        to: the producer or producer_consumer.
        max_demand: events in flight at most on this subscription (default 1000).
        min_demand: ask again once pending demand falls to this (default ``max_demand // 2``);
            batches given to ``handle_events`` hold at most ``max_demand - min_demand`` events.
        cancel: what the consumer does when the subscription ends: ``"permanent"`` (exit with
            the same reason), ``"transient"`` (exit if the reason is abnormal) or
            ``"temporary"`` (carry on).
        timeout: seconds to wait for the consumer.
        options: for the producer's ``handle_subscribe`` and dispatcher, e.g. ``partition=2``
            or ``selector=f``.

    Raises:
        TypeError, ValueError: an invalid option (nothing is sent).
        StageError: ``consumer`` is a producer.
        NoProcess: ``to`` is not running. A ``permanent`` or ``transient`` consumer then exits
            with reason ``"noproc"``, as in GenStage.
        CallError: ``consumer`` is not running, or exited meanwhile.
    """
    check_producer(to)
    resolved = subscription_options(
        {**options, "max_demand": max_demand, "min_demand": min_demand, "cancel": cancel}
    )
    result = await call(consumer, (REQUEST, "subscribe", to, resolved), timeout)
    if isinstance(result, Exception):
        raise result
    subscription: Subscription = result
    return subscription


def cancel(subscription: Subscription, reason: Any = "normal") -> None:
    """Cancel ``subscription`` with ``reason``; callable from anywhere, returns at once.

    The producer drops the subscription and its demand and confirms to the consumer, whose
    ``handle_cancel`` then runs. Mind the subscription's ``cancel`` mode: a ``"permanent"``
    consumer exits with ``reason`` even when it cancelled itself, as in GenStage.
    """
    subscription.producer._deliver((CANCEL, subscription, reason))


def ask(subscription: Subscription, demand: int) -> None:
    """Ask the producer for ``demand`` more events on ``subscription``; ``0`` does nothing.

    For consumers whose ``handle_subscribe`` returned ``"manual"``; they must keep within the
    subscription's ``max_demand`` themselves.

    Raises:
        ValueError: ``demand`` is not an integer >= 0.
    """
    if type(demand) is not int or demand < 0:
        raise ValueError(f"demand must be an integer >= 0, not {demand!r}")
    if demand:
        subscription.producer._deliver((ASK, subscription, demand))


def demand(stage: Server, mode: DemandMode) -> None:
    """Set a producer's demand mode; returns at once, as a cast.

    ``"accumulate"`` holds the demand consumers send; ``"forward"`` passes what was held to
    ``handle_demand`` (one call per ask, in order), then forwards demand as it comes.

    Raises:
        ValueError: ``mode`` is not ``"forward"`` or ``"accumulate"``.
    """
    if mode not in ("forward", "accumulate"):
        raise ValueError(f"demand mode must be 'forward' or 'accumulate', not {mode!r}")
    cast(stage, (REQUEST, "demand", mode))


async def buffered_count(stage: Server, timeout: float | None = 5.0) -> int:
    """How many events a producer holds in its buffer, emitted and not yet asked for.

    Raises:
        StageError: ``stage`` is a consumer.
        CallError: ``stage`` is not running.
    """
    result = await call(stage, (REQUEST, "buffered_count"), timeout)
    if isinstance(result, Exception):
        raise result
    count: int = result
    return count
