"""The dispatchers: demand (most demand first), broadcast (with selectors), partition."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from stage_helpers import Backlog, Recorder, events_of, push, settle

from trunkline import otp
from trunkline.otp.dispatcher import StageDispatcher
from trunkline.otp.dispatchers import BroadcastDispatcher, DemandDispatcher, PartitionDispatcher
from trunkline.otp.stage import ProducerInit, Stage, Subscription, buffered_count, subscribe


async def manual(producer: otp.Pid, **options: Any) -> tuple[otp.Pid, Subscription]:
    """A consumer that asks only when told to (``ask_for``)."""
    consumer = await Recorder.start(None)
    subscription = await subscribe(consumer, to=producer, manual=True, **options)
    return consumer, subscription


async def ask_for(consumer: otp.Pid, subscription: Subscription, n: int) -> None:
    await otp.call(consumer, ("ask", subscription, n))


# -- DemandDispatcher ---------------------------------------------------------------------------


async def test_demand_sends_each_batch_to_the_consumer_with_the_most_pending_demand() -> None:
    producer = await Backlog.start(None)
    a, a_sub = await manual(producer)
    b, b_sub = await manual(producer)
    c, c_sub = await manual(producer)
    await ask_for(a, a_sub, 3)
    await ask_for(b, b_sub, 10)
    await ask_for(c, c_sub, 5)
    await settle()
    push(producer, range(4))  # b has the most (10): all four
    await settle()
    assert (await events_of(a), await events_of(b), await events_of(c)) == ([], [0, 1, 2, 3], [])
    push(producer, range(4, 12))  # b (6) first, then c (5) gets what is left
    await settle()
    assert await events_of(b) == list(range(10))
    assert await events_of(c) == [10, 11]
    push(producer, range(12, 18))  # a and c have 3 each: the older subscription first
    await settle()
    assert await events_of(a) == [12, 13, 14]
    assert await events_of(c) == [10, 11, 15, 16, 17]


async def test_demand_warns_about_greedy_consumers(caplog: pytest.LogCaptureFixture) -> None:
    producer = await Backlog.start(None)
    await Recorder.start([(producer, {"max_demand": 5})])
    await Recorder.start([(producer, {"max_demand": 50})])
    await settle()
    assert "expects a maximum demand of 5" in caplog.text


async def test_demand_can_shuffle_its_first_dispatch() -> None:
    class Shuffled(Backlog):
        def init(self, options: Any) -> Any:
            return super().init(
                {"dispatcher": DemandDispatcher(shuffle_demands_on_first_dispatch=True)}
            )

    producer = await Shuffled.start(None)
    sinks = [await Recorder.start([(producer, {"max_demand": 5})]) for _ in range(3)]
    push(producer, range(15))
    await settle()
    received = [await events_of(sink) for sink in sinks]
    assert sorted(e for events in received for e in events) == list(range(15))
    assert [len(events) for events in received] == [5, 5, 5]


def test_demand_validates_max_demand() -> None:
    with pytest.raises(ValueError, match="max_demand"):
        DemandDispatcher(max_demand=0)


# -- BroadcastDispatcher ------------------------------------------------------------------------


def broadcasting() -> dict[str, Any]:
    return {"dispatcher": BroadcastDispatcher()}


async def test_broadcast_sends_every_event_to_every_consumer_at_the_slowest_pace() -> None:
    producer = await Backlog.start(broadcasting())
    fast, fast_sub = await manual(producer)
    slow, slow_sub = await manual(producer)
    await ask_for(fast, fast_sub, 5)
    await ask_for(slow, slow_sub, 2)
    push(producer, range(10))
    await settle()
    assert await otp.call(producer, "backlog") == 8  # only what both asked for went out
    assert await events_of(fast) == [0, 1]
    assert await events_of(slow) == [0, 1]
    await ask_for(slow, slow_sub, 3)
    await settle()
    assert await events_of(fast) == [0, 1, 2, 3, 4]
    assert await events_of(slow) == [0, 1, 2, 3, 4]


async def test_broadcast_with_a_selector() -> None:
    producer = await Backlog.start(broadcasting())
    evens = await Recorder.start(None)
    everything = await Recorder.start(None)
    await subscribe(evens, to=producer, max_demand=4, selector=lambda n: n % 2 == 0)
    await subscribe(everything, to=producer, max_demand=4)
    push(producer, range(40))
    await settle()
    assert await events_of(evens) == list(range(0, 40, 2))
    assert await events_of(everything) == list(range(40))


async def test_broadcast_refuses_a_second_subscription_from_one_consumer() -> None:
    producer = await Backlog.start(broadcasting())
    sink = await Recorder.start(None)
    await subscribe(sink, to=producer, cancel="temporary")
    second = await subscribe(sink, to=producer, cancel="temporary")
    await settle()
    [(cancellation, cancelled)] = await otp.call(sink, "cancellations")
    assert cancelled is second
    assert isinstance(cancellation.reason, ValueError)
    push(producer, [1, 2])
    await settle()
    assert await events_of(sink) == [1, 2]  # once, through the first subscription


async def test_broadcast_a_latecomer_never_gets_more_than_it_asked_for() -> None:
    producer = await Backlog.start(broadcasting())
    early, early_sub = await manual(producer)
    await ask_for(early, early_sub, 5)  # the producer is asked for 5
    late, late_sub = await manual(producer)
    await ask_for(late, late_sub, 2)  # and those 5 will go to it too
    push(producer, range(5))
    await settle()
    assert await events_of(early) == [0, 1]  # as far as the latecomer asked
    assert await events_of(late) == [0, 1]
    assert await buffered_count(producer) == 3
    await ask_for(late, late_sub, 3)
    await settle()
    assert await events_of(early) == [0, 1, 2, 3, 4]
    assert await events_of(late) == [0, 1, 2, 3, 4]


async def test_broadcast_goes_on_when_the_slowest_consumer_leaves() -> None:
    producer = await Backlog.start(broadcasting())
    fast, fast_sub = await manual(producer)
    slow = await Recorder.start(None)
    await subscribe(slow, to=producer, manual=True)
    await ask_for(fast, fast_sub, 3)
    push(producer, range(3))
    await settle()
    assert await events_of(fast) == []  # the slow one asked for nothing
    await otp.stop(slow)
    await settle()
    assert await events_of(fast) == [0, 1, 2]


def test_broadcast_checks_the_selector() -> None:
    with pytest.raises(ValueError, match="selector"):
        BroadcastDispatcher().subscribe({"selector": "evens"}, None)  # type: ignore[arg-type]


# -- PartitionDispatcher ------------------------------------------------------------------------


async def test_partition_routes_each_event_to_its_hash_partition() -> None:
    producer = await Backlog.start({"dispatcher": PartitionDispatcher(3)})
    sinks = {}
    for partition in range(3):
        sinks[partition] = await Recorder.start(None)
        await subscribe(sinks[partition], to=producer, partition=partition, max_demand=4)
    push(producer, range(60))
    await settle()
    for partition, sink in sinks.items():
        assert await events_of(sink) == [n for n in range(60) if n % 3 == partition]


async def test_partition_with_named_partitions_and_a_hash() -> None:
    dispatcher = PartitionDispatcher(["even", "odd"], hash=lambda n: "odd" if n % 2 else "even")
    producer = await Backlog.start({"dispatcher": dispatcher})
    even = await Recorder.start([(producer, {"partition": "even"})])
    odd = await Recorder.start([(producer, {"partition": "odd"})])
    push(producer, range(10))
    await settle()
    assert await events_of(even) == [0, 2, 4, 6, 8]
    assert await events_of(odd) == [1, 3, 5, 7, 9]


async def test_partition_events_wait_for_their_partition() -> None:
    producer = await Backlog.start({"dispatcher": PartitionDispatcher(2)})
    evens = await Recorder.start([(producer, {"partition": 0, "max_demand": 10})])
    push(producer, range(10))
    await settle()
    assert await events_of(evens) == [0, 2, 4, 6, 8]
    odds = await Recorder.start([(producer, {"partition": 1, "max_demand": 10})])
    await settle()
    assert await events_of(odds) == [1, 3, 5, 7, 9]  # kept for it, in order


async def test_partition_keeps_the_events_of_a_consumer_that_left() -> None:
    producer = await Backlog.start({"dispatcher": PartitionDispatcher(2)})
    evens = await Recorder.start([(producer, {"partition": 0, "max_demand": 4})])
    first = await Recorder.start(None)
    subscription = await subscribe(first, to=producer, partition=1, manual=True)
    await otp.call(first, ("ask", subscription, 1))
    push(producer, range(8))
    await settle()
    assert await events_of(first) == [1]
    await otp.stop(first)
    second = await Recorder.start([(producer, {"partition": 1, "max_demand": 10})])
    await settle()
    assert await events_of(second) == [3, 5, 7]
    assert await events_of(evens) == [0, 2, 4, 6]


async def test_partition_refuses_bad_subscriptions() -> None:
    producer = await Backlog.start({"dispatcher": PartitionDispatcher(2)})
    await Recorder.start([(producer, {"partition": 0})])
    await settle()
    for options, message in [
        ({}, "partition option is required"),
        ({"partition": 7}, "partition must be one of"),
        ({"partition": 0}, "already taken"),
    ]:
        sink = await Recorder.start(None)
        await subscribe(sink, to=producer, cancel="temporary", **options)
        await settle()
        [(cancellation, _)] = await otp.call(sink, "cancellations")
        assert isinstance(cancellation.reason, ValueError)
        assert message in str(cancellation.reason)
    assert otp.is_alive(producer)


async def test_partition_drops_events_for_unknown_partitions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = PartitionDispatcher(2, hash=lambda n: n)
    producer = await Backlog.start({"dispatcher": dispatcher})
    sink = await Recorder.start([(producer, {"partition": 0})])
    await Recorder.start([(producer, {"partition": 1})])
    push(producer, [0, 5, 1])
    await settle()
    assert await events_of(sink) == [0]
    assert "hash gave unknown partition 5" in caplog.text


def test_partition_validates_its_options() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PartitionDispatcher(0)
    with pytest.raises(ValueError, match="give a hash function"):
        PartitionDispatcher(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        PartitionDispatcher([0, 0], hash=lambda e: 0)
    with pytest.raises(TypeError, match="hash"):
        PartitionDispatcher(2, hash="md5")  # type: ignore[arg-type]


# -- the behaviour ------------------------------------------------------------------------------


class Newest(StageDispatcher):
    """The module documentation's example: everything to the newest consumer."""

    def __init__(self) -> None:
        self.subs: list[list[Any]] = []

    def subscribe(self, options: Mapping[str, Any], subscription: Subscription) -> int:
        self.subs.append([0, subscription])
        return 0

    def cancel(self, subscription: Subscription) -> int:
        self.subs = [s for s in self.subs if s[1] is not subscription]
        return 0

    def ask(self, demand: int, subscription: Subscription) -> int:
        for entry in self.subs:
            if entry[1] is subscription:
                entry[0] += demand
        return demand

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        if not self.subs or self.subs[-1][0] == 0:
            return events
        entry = self.subs[-1]
        now, later = events[: entry[0]], events[entry[0] :]
        entry[0] -= len(now)
        self.deliver(entry[1], now)
        return later


async def test_a_dispatcher_of_ones_own() -> None:
    producer = await Backlog.start({"dispatcher": Newest()})
    old = await Recorder.start([(producer, {"max_demand": 5})])
    new = await Recorder.start([(producer, {"max_demand": 5})])
    await settle()
    push(producer, range(4))
    await settle()
    assert await events_of(old) == []
    assert await events_of(new) == [0, 1, 2, 3]


class _SlowCounter(Stage):
    """A producer whose handle_demand awaits (a database fetch, say), then gives what was asked."""

    def init(self, arg: Any) -> ProducerInit:
        self.next = 0
        return ProducerInit()

    async def handle_demand(self, demand: int) -> list[int]:
        await asyncio.sleep(1)
        events = list(range(self.next, self.next + demand))
        self.next += demand
        return events


async def test_demand_of_a_consumer_that_dies_mid_fetch_is_not_counted_twice() -> None:
    producer = await _SlowCounter.start()
    a = await Recorder.start()
    b = await Recorder.start()
    sub_a = await subscribe(a, to=producer, manual=True, max_demand=10, cancel="temporary")
    sub_b = await subscribe(b, to=producer, manual=True, max_demand=10, cancel="temporary")
    await otp.call(a, ("ask", sub_a, 10))
    await asyncio.sleep(0.5)  # the producer is inside handle_demand(10) for A
    await otp.call(b, ("ask", sub_b, 10))  # B's ask waits at the producer...
    otp.exit(a, otp.KILL)  # ...and A's Down comes after it
    await settle()
    assert len(await events_of(b)) == 10
    await otp.call(b, ("ask", sub_b, 10))
    await settle()
    assert len(await events_of(b)) == 20  # an endless producer owes B all it asked for
