"""Small stages shared by the stage, dispatcher and consumer supervisor tests."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from trunkline import otp
from trunkline.otp.stage import (
    Cancellation,
    ConsumerInit,
    Emit,
    ProducerInit,
    Stage,
    Subscription,
    ask,
)


async def settle() -> None:
    """Let the stages run until they are idle, and a minute more: free on the mock clock,
    where time only jumps when nothing is left to run."""
    await asyncio.sleep(60)


class Counter(Stage):
    """Produces ``(tag, 0)``, ``(tag, 1)``... up to ``limit`` events, exactly as asked."""

    def init(self, arg: tuple[Any, int]) -> ProducerInit:
        self.tag, self.limit = arg
        self.next = 0
        self.demands: list[int] = []
        return ProducerInit()

    def handle_demand(self, demand: int) -> list[tuple[Any, int]]:
        self.demands.append(demand)
        stop = min(self.next + demand, self.limit)
        events = [(self.tag, i) for i in range(self.next, stop)]
        self.next = stop
        return events

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        match request:
            case "demands":
                return self.demands
            case "emitted":
                return self.next


class Backlog(Stage):
    """A producer over a queue the test fills: it remembers demand it could not meet.

    The shape of a real producer (the job queue's): events come from elsewhere, demand is
    kept until they do. ``init`` takes the ``ProducerInit`` options.
    """

    def init(self, options: dict[str, Any] | None) -> ProducerInit:
        self.backlog: deque[Any] = deque()
        self.owed = 0
        return ProducerInit(**(options or {}))

    def handle_demand(self, demand: int) -> list[Any]:
        self.owed += demand
        return self._take()

    def handle_cast(self, request: Any) -> Any:
        match request:
            case ("push", events):
                self.backlog.extend(events)
                return self._take()
            case ("emit", events):  # past the demand: into the buffer when nobody asked
                return list(events)
            case "crash":
                raise RuntimeError("asked to crash")

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        match request:
            case "owed":
                return self.owed
            case "backlog":
                return len(self.backlog)
            case ("emit", events):
                return Emit(list(events), reply="emitted")

    def _take(self) -> list[Any]:
        count = min(self.owed, len(self.backlog))
        self.owed -= count
        return [self.backlog.popleft() for _ in range(count)]


def push(producer: Any, events: Any) -> None:
    otp.cast(producer, ("push", list(events)))


class Recorder(Stage):
    """A consumer that records every batch and every cancellation.

    ``init`` takes the ``subscribe_to`` list. ``handle_call("crash_on", n)`` makes it crash on
    its n-th batch. Read with calls: ``"events"``, ``"batches"``, ``"cancellations"``.
    """

    def init(self, subscribe_to: list[Any] | None) -> ConsumerInit:
        self.batches: list[tuple[Subscription, list[Any]]] = []
        self.cancellations: list[tuple[Cancellation, Subscription]] = []
        self.subscriptions: list[Subscription] = []
        self.manual = False
        return ConsumerInit(subscribe_to=subscribe_to or [])

    def handle_subscribe(self, kind: Any, options: Any, subscription: Subscription) -> str:
        self.subscriptions.append(subscription)
        return "manual" if options.get("manual") else "automatic"

    def handle_events(self, events: list[Any], from_: Subscription) -> None:
        self.batches.append((from_, list(events)))

    def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> None:
        self.cancellations.append((cancellation, subscription))

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        match request:
            case "events":
                return [event for _, batch in self.batches for event in batch]
            case "batches":
                return self.batches
            case "cancellations":
                return self.cancellations
            case "subscriptions":
                return self.subscriptions
            case ("ask", subscription, n):
                ask(subscription, n)
                return None


async def events_of(consumer: Any) -> list[Any]:
    events: list[Any] = await otp.call(consumer, "events")
    return events
