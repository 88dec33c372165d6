"""The process behind every stage: a GenServer that runs a :class:`~trunkline.otp.stage.Stage`.

As GenStage runs on gen_server, a stage runs on :class:`~trunkline.otp.GenServer`: calls,
casts, ``stop``, names, start and shutdown are the GenServer's; this module adds the
subscription protocol (see ``_stage_protocol``), demand, the dispatcher and the buffer, and
turns what the stage's callbacks return into events.

The per-batch path is a handful of dictionary lookups and one callback: there is no per-event
work here (a batch is sliced when it is larger than a consumer's batch size, which is C speed).
"""

from __future__ import annotations

import logging
from collections import deque
from types import CoroutineType
from typing import Any, Literal

from . import telemetry
from ._stage_protocol import (
    ASK,
    CANCEL,
    CANCELLED,
    EVENTS,
    REQUEST,
    SUBSCRIBE,
    Subscription,
)
from .dispatcher import StageDispatcher
from .dispatchers.demand import DemandDispatcher
from .exceptions import NoProcess, StageError
from .gen_server import From, GenServer, Ignore, NoReply, Reply, Stop, _Stopping
from .process import NOPROC, Down, Ref, demonitor, is_normal_exit, monitor, resolve
from .stage import (
    _NO_REPLY,
    BUFFER_DISCARD,
    Cancellation,
    ConsumerInit,
    Emit,
    ProducerConsumerInit,
    ProducerInit,
    Stage,
)

__all__ = ["server_class"]

log = logging.getLogger("trunkline.otp")

PRODUCER = "producer"
PRODUCER_CONSUMER = "producer_consumer"
CONSUMER = "consumer"

# Heads a cancellation queued behind a producer_consumer's pending events.
_QUEUED_CANCEL = object()


def server_class(stage: type[Stage]) -> type[StageServer]:
    """The GenServer class that runs ``stage`` (one that traps exits from the start, or not)."""
    return _TrappingStageServer if stage.trap_exit else StageServer


class _Buffer:
    """Events emitted without demand, oldest first, at most ``size`` (None: no limit)."""

    __slots__ = ("events", "keep", "size")

    def __init__(self, size: int | None, keep: str) -> None:
        self.events: list[Any] = []
        self.size = size
        self.keep = keep

    def store(self, events: list[Any]) -> int:
        """Add ``events``; return how many events were dropped to stay within ``size``."""
        buffered = self.events
        size = self.size
        if size is None:
            buffered.extend(events)
            return 0
        if self.keep == "first":
            room = size - len(buffered)
            if len(events) <= room:
                buffered.extend(events)
                return 0
            buffered.extend(events[:room])
            return len(events) - room
        buffered.extend(events)
        excess = len(buffered) - size
        if excess > 0:
            del buffered[:excess]
            return excess
        return 0

    def take_all(self) -> list[Any]:
        events, self.events = self.events, []
        return events

    def put_back(self, events: list[Any]) -> None:
        """Put back, in front, events taken and not dispatched (never more than were taken)."""
        self.events = events + self.events if self.events else events


class _Upstream:
    """A consumer's side of one subscription: its demand and cancel mode."""

    __slots__ = ("cancel", "demand", "manual", "max", "min")

    def __init__(self, options: dict[str, Any], manual: bool) -> None:
        self.cancel: str = options["cancel"]
        self.max: int = options["max_demand"]
        self.min: int = options["min_demand"]
        self.manual = manual
        self.demand = 0 if manual else self.max  # asked for and not yet received


class StageServer(GenServer):
    """Runs one stage; see the module documentation."""

    stage: Stage
    kind: str
    options: NoReply | None  # continue_/timeout returned by the last callback
    # producer side
    dispatcher: StageDispatcher
    consumers: dict[Subscription, Ref]  # and the monitor of each consumer
    consumer_refs: dict[Ref, Subscription]
    buffer: _Buffer
    accumulated: list[int] | None  # demand held in "accumulate" mode; None when forwarding
    pc_demand: int  # producer_consumer: demand from downstream not yet met
    pc_queue: deque[tuple[Any, ...]]  # producer_consumer: upstream batches waiting for demand
    # consumer side
    producers: dict[Subscription, _Upstream]
    producer_refs: dict[Ref, Subscription]  # subscription.ref (our monitor) -> subscription

    # -- start -------------------------------------------------------------------------------

    async def init(self, arg: tuple[type[Stage], Any]) -> Ignore | Stop | None:
        cls, init_arg = arg
        stage = self.stage = cls()
        stage.pid = self.pid
        self.pid._behaviour = stage  # introspection and crash reports show the user's class
        self.options = None
        self.consumers, self.consumer_refs = {}, {}
        self.producers, self.producer_refs = {}, {}
        self.accumulated = None
        self.pc_demand = 0
        self.pc_queue = deque()
        self.buffer = _Buffer(0, "last")
        result = stage.init(init_arg)
        if type(result) is CoroutineType:
            result = await result
        if isinstance(result, Ignore | Stop):
            return result
        rtype = type(result)
        if rtype is ProducerInit:
            self.kind = PRODUCER
            self._init_producer(result.dispatcher, result.buffer_size, result.buffer_keep)
            self.accumulated = [] if result.demand == "accumulate" else None
            return None
        if rtype is ProducerConsumerInit:
            self.kind = PRODUCER_CONSUMER
            self._init_producer(result.dispatcher, result.buffer_size, result.buffer_keep)
        elif rtype is ConsumerInit:
            self.kind = CONSUMER
        else:
            raise TypeError(
                f"{cls.__qualname__}.init must return ProducerInit, ProducerConsumerInit, "
                f"ConsumerInit, Ignore or Stop, not {result!r}"
            )
        for to, options in result.subscribe_to:
            outcome = await self._subscribe(to, options)
            if type(outcome) is Stop:
                return Stop(outcome.reason)
        return None

    def _init_producer(
        self, dispatcher: StageDispatcher | None, buffer_size: int | None, buffer_keep: str
    ) -> None:
        if dispatcher is None:
            dispatcher = DemandDispatcher()
        owner = getattr(dispatcher, "_producer", None)
        if owner is not None and owner is not self.pid and owner._alive:
            raise ValueError(
                f"{self.stage._describe()}: its dispatcher {dispatcher!r} already serves "
                f"{owner!r}; create a dispatcher for each producer in its init"
            )
        dispatcher._producer = self.pid
        self.dispatcher = dispatcher
        self.buffer = _Buffer(buffer_size, buffer_keep)

    # -- GenServer callbacks -------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Any:
        if type(request) is tuple and request and request[0] is REQUEST:
            return await self._request(request)
        stage = self.stage
        result = stage.handle_call(request, from_)
        if type(result) is CoroutineType:
            result = await result
        if type(result) is not Emit:
            return result  # the reply, Reply, NoReply or Stop: the GenServer loop knows them
        self._emit(result.events)
        if result.reply is _NO_REPLY:
            return NoReply(continue_=result.continue_, timeout=result.timeout)
        return Reply(result.reply, continue_=result.continue_, timeout=result.timeout)

    async def handle_cast(self, request: Any) -> NoReply | None:
        if type(request) is tuple and len(request) == 3 and request[0] is REQUEST:
            if request[1] == "demand":
                await self._set_demand(request[2])
            return self._take_options()
        result = self.stage.handle_cast(request)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_cast")
        return self._take_options()

    async def handle_info(self, message: Any) -> NoReply | None:
        mtype = type(message)
        if mtype is tuple and len(message) == 3:
            tag = message[0]
            if tag is EVENTS:
                await self._on_events(message[1], message[2])
                return self._take_options()
            if tag is ASK:
                await self._on_ask(message[1], message[2])
                return self._take_options()
            if tag is SUBSCRIBE:
                await self._on_subscribe(message[1], message[2])
                return self._take_options()
            if tag is CANCEL:
                await self._producer_cancel(message[1], "cancel", message[2])
                return self._take_options()
            if tag is CANCELLED:
                await self._consumer_cancel(message[1], "cancel", message[2])
                return self._take_options()
        elif mtype is Down:
            subscription = self.producer_refs.get(message.ref)
            if subscription is not None:
                await self._consumer_cancel(subscription, "down", message.reason)
                return self._take_options()
            subscription = self.consumer_refs.get(message.ref)
            if subscription is not None:
                await self._producer_cancel(subscription, "down", message.reason)
                return self._take_options()
        result = self.stage.handle_info(message)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_info")
        return self._take_options()

    async def handle_continue(self, term: Any) -> NoReply | None:
        result = self.stage.handle_continue(term)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_continue")
        return self._take_options()

    async def terminate(self, reason: Any) -> None:
        result = self.stage.terminate(reason)
        if type(result) is CoroutineType:
            await result

    # -- callback results ----------------------------------------------------------------------

    def _apply(self, result: Any, callback: str) -> None:
        """Emit what a callback returned and keep its options; ``Stop`` stops the stage."""
        if result is None:
            return
        rtype = type(result)
        if rtype is list:
            self._emit(result)
        elif rtype is Emit:
            if result.continue_ is not None or result.timeout is not None:
                self.options = NoReply(continue_=result.continue_, timeout=result.timeout)
            self._emit(result.events)
        elif rtype is Stop:
            raise _Stopping(result.reason)
        elif isinstance(result, NoReply):
            self.options = result
        elif isinstance(result, list):
            self._emit(result)
        else:
            raise TypeError(
                f"{self.stage._describe()}: {callback} must return None, a list of events, "
                f"Emit, NoReply or Stop, not {result!r}"
            )

    def _take_options(self) -> NoReply | None:
        options = self.options
        if options is not None:
            self.options = None
        return options

    async def _request(self, request: tuple[Any, ...]) -> Any:
        what = request[1]
        stage = self.stage
        if what == "subscribe":
            if self.kind == PRODUCER:
                return StageError(
                    self.pid, f"{stage._describe()} is a producer: it cannot subscribe"
                )
            return await self._subscribe(request[2], request[3])
        if what == "buffered_count":
            if self.kind == CONSUMER:
                return StageError(self.pid, f"{stage._describe()} is a consumer: no buffer")
            return len(self.buffer.events)
        return ValueError(f"{stage._describe()} does not understand {request!r}")

    # -- producer side -------------------------------------------------------------------------

    async def _on_subscribe(self, subscription: Subscription, options: dict[str, Any]) -> None:
        stage = self.stage
        if self.kind == CONSUMER:
            log.error(
                "%s is a consumer: %r cannot subscribe to it", stage._describe(), subscription
            )
            subscription.consumer._deliver((CANCELLED, subscription, "not_a_producer"))
            return
        if subscription in self.consumers:
            log.error("%s received a duplicated subscription: %r", stage._describe(), subscription)
            subscription.consumer._deliver((CANCELLED, subscription, "duplicated_subscription"))
            return
        ref = monitor(subscription.consumer)
        self.consumers[subscription] = ref
        self.consumer_refs[ref] = subscription
        result = stage.handle_subscribe("consumer", options, subscription)
        if type(result) is CoroutineType:
            result = await result
        if type(result) is Stop:
            raise _Stopping(result.reason)
        if result != "automatic":
            raise TypeError(
                f"{stage._describe()}: handle_subscribe on a producer must return 'automatic' "
                f"or Stop, not {result!r}"
            )
        try:
            counter = self.dispatcher.subscribe(options, subscription)
        except Exception as refusal:
            log.error("%s refused %r: %s", stage._describe(), subscription, refusal)
            await self._producer_cancel(subscription, "cancel", refusal, dispatched=False)
            return
        await self._on_demand(counter)

    async def _on_ask(self, subscription: Subscription, counter: int) -> None:
        if subscription not in self.consumers:
            subscription.consumer._deliver((CANCELLED, subscription, "unknown_subscription"))
            return
        await self._on_demand(self.dispatcher.ask(counter, subscription))

    async def _producer_cancel(
        self,
        subscription: Subscription,
        kind: Literal["cancel", "down"],
        reason: Any,
        *,
        dispatched: bool = True,
    ) -> None:
        ref = self.consumers.pop(subscription, None)
        if ref is None:
            return
        del self.consumer_refs[ref]
        if kind == "cancel":
            demonitor(ref, flush=True)
        subscription.consumer._deliver((CANCELLED, subscription, reason))
        # The dispatcher first, so that what handle_cancel emits cannot go to this consumer.
        counter = self.dispatcher.cancel(subscription) if dispatched else 0
        result = self.stage.handle_cancel(Cancellation(kind, reason), subscription)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_cancel")
        await self._on_demand(counter)

    async def _on_demand(self, counter: int) -> None:
        """The dispatcher has ``counter`` new demand: serve it from the buffer, then ask."""
        buffer = self.buffer
        if buffer.events:
            # Offer the whole buffer: the dispatcher takes what demand allows, in order,
            # including demand it did not pass on (for a consumer that went away).
            events = buffer.take_all()
            leftover = self.dispatcher.dispatch(events, len(events))
            if leftover:
                buffer.put_back(leftover)
            counter -= len(events) - len(leftover)
        if self.kind == PRODUCER:
            if counter > 0:
                if self.accumulated is None:
                    await self._handle_demand(counter)
                else:
                    self.accumulated.append(counter)
        else:
            self.pc_demand = max(0, self.pc_demand + counter)
            await self._take_pc_events()

    async def _handle_demand(self, counter: int) -> None:
        result = self.stage.handle_demand(counter)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_demand")

    def _emit(self, events: list[Any]) -> None:
        if not events:
            return
        kind = self.kind
        if kind == CONSUMER:
            log.error(
                "%s is a consumer: it cannot emit events (return None); dropped %d: %r",
                self.stage._describe(),
                len(events),
                events[:10],
            )
            return
        if not self.consumers or self.buffer.events:
            self._store(events)  # behind what is buffered already, to keep the order
            return
        length = len(events)
        leftover = self.dispatcher.dispatch(events, length)
        if kind == PRODUCER_CONSUMER:
            self.pc_demand = max(0, self.pc_demand - (length - len(leftover)))
        if leftover:
            self._store(leftover)

    def _store(self, events: list[Any]) -> None:
        discarded = self.buffer.store(events)
        if discarded:
            buffer = self.buffer
            stage = self.stage
            log.warning(
                "%s discarded %d events from its buffer (buffer_size %s, keeping the %s)",
                stage._describe(),
                discarded,
                buffer.size,
                buffer.keep,
            )
            telemetry.execute(
                BUFFER_DISCARD,
                {"count": discarded, "buffered": len(buffer.events)},
                {
                    "stage": self.pid,
                    "name": self.pid._name,
                    "module": f"{type(stage).__module__}.{type(stage).__qualname__}",
                    "buffer_size": buffer.size,
                    "buffer_keep": buffer.keep,
                },
            )

    async def _set_demand(self, mode: str) -> None:
        if self.kind == PRODUCER:
            if mode == "forward":
                held, self.accumulated = self.accumulated, None
                for counter in held or ():
                    await self._handle_demand(counter)
            elif self.accumulated is None:
                self.accumulated = []
        elif not (self.kind == PRODUCER_CONSUMER and mode == "forward"):
            log.error(
                "%s is a %s: only producers have a demand mode (asked for %r)",
                self.stage._describe(),
                self.kind,
                mode,
            )

    # -- consumer side -------------------------------------------------------------------------

    async def _subscribe(self, to: Any, options: dict[str, Any]) -> Subscription | Exception | Stop:
        stage = self.stage
        producer = resolve(to)
        if producer is None:
            if options["cancel"] == "temporary":
                return NoProcess(to)
            log.error("%s could not subscribe to %r: no such process", stage._describe(), to)
            return Stop(NOPROC, reply=NoProcess(to))
        ref = monitor(producer)
        subscription = Subscription(producer, self.pid, ref)
        producer._deliver((SUBSCRIBE, subscription, options))
        result = stage.handle_subscribe("producer", options, subscription)
        if type(result) is CoroutineType:
            result = await result
        if result == "automatic":
            upstream = _Upstream(options, manual=False)
            producer._deliver((ASK, subscription, upstream.max))
        elif result == "manual":
            upstream = _Upstream(options, manual=True)
        elif type(result) is Stop:
            return Stop(result.reason)
        else:
            raise TypeError(
                f"{stage._describe()}: handle_subscribe must return 'automatic', 'manual' or "
                f"Stop, not {result!r}"
            )
        self.producers[subscription] = upstream
        self.producer_refs[ref] = subscription
        return subscription

    async def _on_events(self, subscription: Subscription, events: list[Any]) -> None:
        upstream = self.producers.get(subscription)
        if upstream is None:
            # Not (or no longer) ours: tell the producer, as GenStage does.
            subscription.producer._deliver((CANCEL, subscription, "unknown_subscription"))
            return
        if self.kind == PRODUCER_CONSUMER:
            self.pc_queue.append((subscription, events))
            await self._take_pc_events()
            return
        await self._consume(subscription, upstream, events)

    async def _consume(
        self, subscription: Subscription, upstream: _Upstream | None, events: list[Any]
    ) -> None:
        """Hand ``events`` to handle_events in batches, asking again as demand falls to min."""
        if upstream is None or upstream.manual:
            await self._handle_events(events, subscription)
            return
        count = len(events)
        step = upstream.max - upstream.min
        start = 0
        while start < count:
            if start == 0 and count <= step:
                batch = events  # the usual case: no copy
            else:
                batch = events[start : start + step]
            size = len(batch)
            start += size
            demand = upstream.demand - size
            if demand < 0:
                log.error(
                    "%s received %d events in excess from %r",
                    self.stage._describe(),
                    -demand,
                    subscription,
                )
                demand = 0
            if demand <= upstream.min:
                more = upstream.max - demand
                upstream.demand = upstream.max
            else:
                more = 0
                upstream.demand = demand
            await self._handle_events(batch, subscription)
            if more and self.producers.get(subscription) is upstream:
                subscription.producer._deliver((ASK, subscription, more))

    async def _handle_events(self, events: list[Any], subscription: Subscription) -> None:
        result = self.stage.handle_events(events, subscription)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_events")

    async def _take_pc_events(self) -> None:
        """A producer_consumer works on upstream batches only while downstream asks."""
        queue = self.pc_queue
        while self.pc_demand > 0 and queue:
            entry = queue.popleft()
            if entry[0] is _QUEUED_CANCEL:
                await self._invoke_cancel(*entry[1:])
            else:
                subscription, events = entry
                await self._consume(subscription, self.producers.get(subscription), events)

    async def _consumer_cancel(
        self, subscription: Subscription, kind: Literal["cancel", "down"], reason: Any
    ) -> None:
        upstream = self.producers.pop(subscription, None)
        if upstream is None:
            return
        del self.producer_refs[subscription.ref]
        if kind == "cancel":
            demonitor(subscription.ref, flush=True)
        if self.kind == PRODUCER_CONSUMER and self.pc_queue:
            # After the events that came before it, as GenStage does.
            self.pc_queue.append((_QUEUED_CANCEL, subscription, upstream.cancel, kind, reason))
            return
        await self._invoke_cancel(subscription, upstream.cancel, kind, reason)

    async def _invoke_cancel(
        self, subscription: Subscription, mode: str, kind: Literal["cancel", "down"], reason: Any
    ) -> None:
        result = self.stage.handle_cancel(Cancellation(kind, reason), subscription)
        if type(result) is CoroutineType:
            result = await result
        self._apply(result, "handle_cancel")
        if mode == "permanent" or (mode == "transient" and not is_normal_exit(reason)):
            log.info(
                "%s stops: its subscription to %r ended (%s) with reason %r",
                self.stage._describe(),
                subscription.producer,
                kind,
                reason,
            )
            raise _Stopping(reason)


class _TrappingStageServer(StageServer):
    trap_exit = True
