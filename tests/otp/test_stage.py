"""Stage: subscription, demand, batches, buffer, cancellation, and the GenServer side."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import aclosing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stage_helpers import Backlog, Counter, Recorder, events_of, push, settle

from trunkline import otp
from trunkline.otp import telemetry, testing
from trunkline.otp.dispatchers import BroadcastDispatcher, DemandDispatcher, PartitionDispatcher
from trunkline.otp.exceptions import NoProcess, StageError
from trunkline.otp.stage import (
    BUFFER_DISCARD,
    Cancellation,
    ConsumerInit,
    Emit,
    ProducerConsumerInit,
    ProducerInit,
    Stage,
    Subscription,
    ask,
    buffered_count,
    cancel,
    demand,
    stage_stream,
    subscribe,
)
from trunkline.otp.supervisor import Supervisor, child_spec, which_children

# -- a pipeline ---------------------------------------------------------------------------------


class Doubler(Stage):
    def init(self, subscribe_to: list[Any]) -> ProducerConsumerInit:
        return ProducerConsumerInit(subscribe_to=subscribe_to)

    def handle_events(self, events: list[Any], from_: Subscription) -> list[Any]:
        return [(tag, 2 * n) for tag, n in events]


async def test_events_flow_through_a_pipeline_in_order() -> None:
    await Counter.start(("a", 1000), name="counter")
    await Doubler.start([("counter", {"max_demand": 50})], name="doubler")
    sink = await Recorder.start([("doubler", {"max_demand": 30, "min_demand": 10})])
    await settle()
    assert await events_of(sink) == [("a", 2 * n) for n in range(1000)]


async def test_batches_hold_at_most_max_minus_min_and_demand_is_renewed_at_min() -> None:
    counter = await Counter.start(("a", 100))
    sink = await Recorder.start([(counter, {"max_demand": 10, "min_demand": 4})])
    await settle()
    batches = [batch for _, batch in await otp.call(sink, "batches")]
    assert max(len(batch) for batch in batches) == 6
    assert [event for batch in batches for event in batch] == [("a", n) for n in range(100)]
    # max_demand at first; then, each time pending demand falls to min_demand (4) or below,
    # what brings it back to max_demand: 6 after a batch of 6, 10 when it reached 0.
    demands = await otp.call(counter, "demands")
    assert demands[0] == 10
    assert set(demands[1:]) <= {6, 10}


async def test_async_callbacks_work_like_plain_ones() -> None:
    class Slow(Stage):
        async def init(self, arg: Any) -> ProducerInit:
            self.next = 0
            return ProducerInit()

        async def handle_demand(self, demand: int) -> list[int]:
            await asyncio.sleep(0.01)  # on the mock clock: free, but a real suspension
            events = list(range(self.next, min(self.next + demand, 50)))
            self.next += len(events)
            return events

    class Sum(Stage):
        async def init(self, producer: otp.Pid) -> ConsumerInit:
            self.total = 0
            return ConsumerInit(subscribe_to=[(producer, {"max_demand": 7})])

        async def handle_events(self, events: list[int], from_: Subscription) -> None:
            self.total += sum(events)

        async def handle_call(self, request: Any, from_: otp.From) -> int:
            return self.total

    producer = await Slow.start()
    consumer = await Sum.start(producer)
    await settle()
    assert await otp.call(consumer, "total") == sum(range(50))


# -- the invariant: never more than asked, order kept per producer ----------------------------


class Checker(Stage):
    """A consumer (or a pass-through producer_consumer) that checks what the protocol
    promises, against its own model of the demand it has asked for."""

    def init(self, arg: tuple[str, list[Any]]) -> Any:
        kind, subscribe_to = arg
        self.outstanding: dict[Subscription, list[int]] = {}
        self.last: dict[tuple[Any, Subscription], int] = {}
        self.violations: list[str] = []
        self.events: list[Any] = []
        if kind == "producer_consumer":
            return ProducerConsumerInit(subscribe_to=subscribe_to)
        return ConsumerInit(subscribe_to=subscribe_to)

    def handle_subscribe(self, kind: Any, options: Any, subscription: Subscription) -> str:
        if kind == "producer":
            # Asked for max_demand on subscribing.
            self.outstanding[subscription] = [
                options["max_demand"],
                options["min_demand"],
                options["max_demand"],
            ]
        return "automatic"

    def handle_events(self, events: list[Any], from_: Subscription) -> list[Any]:
        model = self.outstanding[from_]
        pending, low, high = model
        if len(events) > pending:
            self.violations.append(f"{len(events)} events on {from_} with {pending} asked")
        if len(events) > high - low:
            self.violations.append(f"a batch of {len(events)} > {high - low}")
        pending -= len(events)
        if pending <= low:
            pending = high  # the stage asks for the difference after this callback
        model[0] = pending
        for tag, n in events:
            key = (tag, from_)
            if n <= self.last.get(key, -1):
                self.violations.append(f"{tag} {n} after {self.last[key]}")
            self.last[key] = n
        self.events.extend(events)
        return events  # a producer_consumer passes them on; a consumer returns nothing

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return (self.violations, self.events)


class PassThroughChecker(Checker):
    pass


class SinkChecker(Checker):
    def handle_events(self, events: list[Any], from_: Subscription) -> None:
        super().handle_events(events, from_)


demands = st.integers(min_value=1, max_value=40).flatmap(
    lambda high: st.tuples(st.just(high), st.integers(min_value=0, max_value=high - 1))
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=3),
    consumer_demands=st.lists(st.lists(demands, min_size=3, max_size=3), min_size=1, max_size=3),
    middle=st.one_of(st.none(), demands),
)
def test_no_subscription_gets_more_than_it_asked_for_and_order_is_kept(
    limits: list[int],
    consumer_demands: list[list[tuple[int, int]]],
    middle: tuple[int, int] | None,
) -> None:
    async def main() -> None:
        producers = [await Counter.start((f"p{i}", limit)) for i, limit in enumerate(limits)]
        upstream = producers
        checkers = []
        if middle is not None:
            high, low = middle
            subscribe_to = [(p, {"max_demand": high, "min_demand": low}) for p in producers]
            checkers.append(await PassThroughChecker.start(("producer_consumer", subscribe_to)))
            upstream = checkers[:1]
        sinks = []
        for per_producer in consumer_demands:
            subscribe_to = [
                (p, {"max_demand": high, "min_demand": low})
                for p, (high, low) in zip(upstream, per_producer, strict=False)
            ]
            sinks.append(await SinkChecker.start(("consumer", subscribe_to)))
        await settle()
        received = []
        for stage in checkers + sinks:
            violations, events = await otp.call(stage, "check")
            assert violations == []
            if stage in sinks:
                received.extend(events)
        expected = [(f"p{i}", n) for i, limit in enumerate(limits) for n in range(limit)]
        assert sorted(received) == sorted(expected)

    testing.run(main)


class BroadcastCounter(Counter):
    """A Counter that broadcasts, and holds demand until every consumer is there."""

    def init(self, arg: tuple[Any, int]) -> ProducerInit:
        super().init(arg)
        return ProducerInit(dispatcher=BroadcastDispatcher(), demand="accumulate")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=2),
    consumers=st.lists(
        st.tuples(st.lists(demands, min_size=2, max_size=2), st.booleans()), min_size=1, max_size=3
    ),
)
def test_a_broadcast_sends_everything_to_everyone_within_their_demand(
    limits: list[int], consumers: list[tuple[list[tuple[int, int]], bool]]
) -> None:
    """Consumers there before the producer starts get every event; latecomers get every
    event from some point on. Nobody gets more than it asked for."""

    async def main() -> None:
        producers = [
            await BroadcastCounter.start((f"p{i}", limit)) for i, limit in enumerate(limits)
        ]

        async def start_sink(per_producer: list[tuple[int, int]]) -> otp.Pid:
            subscribe_to = [
                (p, {"max_demand": high, "min_demand": low})
                for p, (high, low) in zip(producers, per_producer, strict=False)
            ]
            return await SinkChecker.start(("consumer", subscribe_to))

        early = [await start_sink(demands) for demands, late in consumers if not late]
        for producer in producers:
            demand(producer, "forward")
        await asyncio.sleep(0)
        late = [await start_sink(demands) for demands, late in consumers if late]
        await settle()
        for sink in early + late:
            violations, events = await otp.call(sink, "check")
            assert violations == []
            for i, limit in enumerate(limits):
                numbers = [n for tag, n in events if tag == f"p{i}"]
                if sink in early:
                    assert numbers == list(range(limit))
                else:
                    assert numbers == list(range(limit - len(numbers), limit))

    testing.run(main)


class PartitionCounter(Counter):
    """A Counter of ``(tag, n)`` events partitioned by ``n``, holding demand until forward."""

    def init(self, arg: tuple[Any, int, int]) -> ProducerInit:
        tag, limit, self.partitions = arg
        super().init((tag, limit))
        dispatcher = PartitionDispatcher(self.partitions, hash=lambda e: e[1] % self.partitions)
        return ProducerInit(dispatcher=dispatcher, demand="accumulate")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(min_value=0, max_value=300),
    partitions=st.lists(demands, min_size=1, max_size=5),
)
def test_each_partition_gets_its_events_within_its_demand(
    limit: int, partitions: list[tuple[int, int]]
) -> None:
    async def main() -> None:
        producer = await PartitionCounter.start(("p", limit, len(partitions)))
        sinks = []
        for partition, (high, low) in enumerate(partitions):
            options = {"max_demand": high, "min_demand": low, "partition": partition}
            sinks.append(await SinkChecker.start(("consumer", [(producer, options)])))
        demand(producer, "forward")
        await settle()
        for partition, sink in enumerate(sinks):
            violations, events = await otp.call(sink, "check")
            assert violations == []
            assert events == [("p", n) for n in range(limit) if n % len(partitions) == partition]

    testing.run(main)


# -- manual demand ------------------------------------------------------------------------------


async def test_a_manual_consumer_gets_only_what_it_asks_for() -> None:
    counter = await Counter.start(("a", 100))
    sink = await Recorder.start([(counter, {"manual": True, "max_demand": 50})])
    await settle()
    assert await events_of(sink) == []
    [subscription] = await otp.call(sink, "subscriptions")
    await otp.call(sink, ("ask", subscription, 3))
    await settle()
    assert await events_of(sink) == [("a", 0), ("a", 1), ("a", 2)]
    await otp.call(sink, ("ask", subscription, 2))
    await settle()
    assert len(await events_of(sink)) == 5
    assert await otp.call(counter, "demands") == [3, 2]


def test_ask_rejects_a_negative_demand() -> None:
    with pytest.raises(ValueError, match="demand must be an integer >= 0"):
        ask(None, -1)


# -- producers: buffer and demand mode ----------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "kept"),
    [("first", list(range(5))), ("last", list(range(3, 8)))],
)
async def test_the_buffer_keeps_first_or_last_and_counts_what_it_drops(
    keep: str, kept: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    producer = await Backlog.start({"buffer_size": 5, "buffer_keep": keep})
    with telemetry.capture([BUFFER_DISCARD]) as seen:
        otp.cast(producer, ("emit", range(8)))  # nobody subscribed: all into the buffer
        assert await buffered_count(producer) == 5
    [discard] = seen
    assert discard.measurements == {"count": 3, "buffered": 5}
    assert discard.metadata["stage"] is producer
    assert discard.metadata["buffer_keep"] == keep
    assert discard.metadata["module"].endswith("Backlog")
    assert "discarded 3 events" in caplog.text
    sink = await Recorder.start([producer])
    await settle()
    assert await events_of(sink) == kept
    assert await buffered_count(producer) == 0


async def test_buffered_events_go_out_before_new_ones() -> None:
    producer = await Backlog.start(None)
    otp.cast(producer, ("emit", ["b0", "b1"]))
    push(producer, ["n0", "n1", "n2"])
    sink = await Recorder.start([(producer, {"max_demand": 2, "min_demand": 0})])
    await settle()
    assert await events_of(sink) == ["b0", "b1", "n0", "n1", "n2"]


async def test_events_emitted_past_demand_wait_in_the_buffer_in_order() -> None:
    producer = await Backlog.start(None)
    sink = await Recorder.start([(producer, {"max_demand": 3, "min_demand": 0, "manual": True})])
    [subscription] = await otp.call(sink, "subscriptions")
    await otp.call(sink, ("ask", subscription, 2))
    assert await otp.call(producer, ("emit", range(5))) == "emitted"
    await settle()
    assert await events_of(sink) == [0, 1]
    assert await buffered_count(producer) == 3
    await otp.call(sink, ("ask", subscription, 3))
    await settle()
    assert await events_of(sink) == [0, 1, 2, 3, 4]


async def test_accumulated_demand_waits_for_forward() -> None:
    numbers = iter(range(100))

    class Gate(Stage):
        def init(self, arg: Any) -> ProducerInit:
            self.calls: list[int] = []
            return ProducerInit(demand="accumulate")

        def handle_demand(self, n: int) -> list[int]:
            self.calls.append(n)
            return list(itertools.islice(numbers, n))

        def handle_call(self, request: Any, from_: otp.From) -> list[int]:
            return self.calls

    gate = await Gate.start()
    a = await Recorder.start([(gate, {"max_demand": 4})])
    b = await Recorder.start([(gate, {"max_demand": 6})])
    await settle()
    assert await otp.call(gate, "calls") == []
    demand(gate, "forward")
    await settle()
    calls = await otp.call(gate, "calls")
    assert calls[:2] == [4, 6]  # held demand, one call per ask, in order
    assert sorted(await events_of(a) + await events_of(b)) == list(range(100))


def test_demand_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'forward' or 'accumulate'"):
        demand("anything", "later")


# -- subscribing --------------------------------------------------------------------------------


async def test_subscribe_returns_the_subscription_both_sides_see() -> None:
    producer = await Backlog.start(None)
    sink = await Recorder.start(None)
    subscription = await subscribe(sink, to=producer, max_demand=5, cancel="temporary")
    assert isinstance(subscription, Subscription)
    assert subscription.producer is producer
    assert subscription.consumer is sink
    push(producer, ["x"])
    await settle()
    [(from_, batch)] = await otp.call(sink, "batches")
    assert from_ is subscription
    assert batch == ["x"]


async def test_subscribe_validates_options_in_the_caller() -> None:
    sink = await Recorder.start(None)
    with pytest.raises(ValueError, match="max_demand"):
        await subscribe(sink, to="p", max_demand=0)
    with pytest.raises(ValueError, match="min_demand"):
        await subscribe(sink, to="p", max_demand=5, min_demand=5)
    with pytest.raises(ValueError, match="cancel"):
        await subscribe(sink, to="p", cancel="forever")
    with pytest.raises(TypeError, match="a producer is a pid, a name or a Via"):
        await subscribe(sink, to=["p"])
    assert otp.is_alive(sink)


async def test_a_producer_cannot_subscribe() -> None:
    producer = await Backlog.start(None)
    other = await Backlog.start(None)
    with pytest.raises(StageError, match="is a producer"):
        await subscribe(producer, to=other)
    assert otp.is_alive(producer)


async def test_subscribing_to_a_missing_producer() -> None:
    temporary = await Recorder.start(None)
    with pytest.raises(NoProcess):
        await subscribe(temporary, to="nobody", cancel="temporary")
    assert otp.is_alive(temporary)

    permanent = await Recorder.start(None)
    ref = otp.monitor(permanent)
    with pytest.raises(NoProcess):
        await subscribe(permanent, to="nobody")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert down.reason == "noproc"


async def test_a_consumer_whose_init_subscribes_to_nothing_fails_to_start() -> None:
    with pytest.raises(otp.StartError) as failure:
        await Recorder.start(["nobody"])
    assert failure.value.reason == "noproc"
    sink = await Recorder.start([("nobody", {"cancel": "temporary"})])
    assert otp.is_alive(sink)


async def test_subscribing_to_a_consumer_is_cancelled() -> None:
    consumer = await Recorder.start(None)
    sink = await Recorder.start(None)
    subscription = await subscribe(sink, to=consumer, cancel="temporary")
    await settle()
    [(cancellation, cancelled)] = await otp.call(sink, "cancellations")
    assert cancellation == Cancellation("cancel", "not_a_producer")
    assert cancelled is subscription


# -- cancellation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "crash", "exits"),
    [
        ("permanent", False, True),
        ("permanent", True, True),
        ("transient", False, False),
        ("transient", True, True),
        ("temporary", False, False),
        ("temporary", True, False),
    ],
)
async def test_what_a_consumer_does_when_its_producer_exits(
    mode: str, crash: bool, exits: bool
) -> None:
    producer = await Backlog.start(None)
    sink = await Recorder.start([(producer, {"cancel": mode})])
    ref = otp.monitor(sink)
    if crash:
        otp.cast(producer, "crash")
    else:
        await otp.stop(producer)
    await settle()
    if exits:
        down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
        if crash:
            assert isinstance(down.reason, RuntimeError)  # the producer's own reason
        else:
            assert down.reason == "normal"
    else:
        assert otp.is_alive(sink)
        [(cancellation, _)] = await otp.call(sink, "cancellations")
        assert cancellation.kind == "down"
        assert (
            isinstance(cancellation.reason, RuntimeError)
            if crash
            else cancellation.reason == "normal"
        )


async def test_cancel_ends_a_subscription_on_both_sides() -> None:
    class Watched(Backlog):
        def init(self, options: Any) -> ProducerInit:
            self.cancelled: list[Cancellation] = []
            return super().init(options)

        def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> None:
            self.cancelled.append(cancellation)

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            if request == "cancelled":
                return self.cancelled
            return super().handle_call(request, from_)

    producer = await Watched.start(None)
    sink = await Recorder.start(None)
    subscription = await subscribe(sink, to=producer, cancel="temporary")
    cancel(subscription, "enough")
    await settle()
    assert await otp.call(producer, "cancelled") == [Cancellation("cancel", "enough")]
    [(cancellation, cancelled)] = await otp.call(sink, "cancellations")
    assert cancellation == Cancellation("cancel", "enough")
    assert cancelled is subscription
    assert otp.is_alive(sink)
    push(producer, [1, 2])  # nobody subscribed now: they wait in the buffer
    await settle()
    assert await events_of(sink) == []
    assert await buffered_count(producer) == 2


async def test_a_permanent_consumer_exits_when_its_subscription_is_cancelled() -> None:
    producer = await Backlog.start(None)
    sink = await Recorder.start(None)
    ref = otp.monitor(sink)
    subscription = await subscribe(sink, to=producer)
    cancel(subscription, ("shutdown", "done"))
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert down.reason == ("shutdown", "done")


async def test_a_consumer_crash_under_load_takes_its_demand_with_it() -> None:
    """Three consumers; the greediest crashes mid-stream. The others keep getting events,
    nothing is sent to the dead one, and its demand is gone."""

    producer = await Backlog.start(None)
    greedy = await Recorder.start([(producer, {"max_demand": 100, "min_demand": 50})])
    others = [
        await Recorder.start([(producer, {"max_demand": 10, "min_demand": 5})]) for _ in range(2)
    ]
    push(producer, range(30))  # all to the greedy one: it has the most demand
    await settle()
    assert await events_of(greedy) == list(range(30))  # and 70 more pending
    # It crashes just after the producer was handed more events, before the producer has
    # heard of it: they must go to the others, not to the dead one.
    push(producer, ["after-crash"])
    otp.exit(greedy, RuntimeError("crashed mid-stream"))
    push(producer, range(30, 200))
    await settle()

    received = [event for sink in others for event in await events_of(sink)]
    assert sorted(received, key=str) == sorted(["after-crash", *range(30, 200)], key=str)
    for sink in others:
        numbers = [e for e in await events_of(sink) if isinstance(e, int)]
        assert numbers == sorted(numbers)
    # What the producer still owes is exactly what the others asked for and did not get:
    # the 70 the greedy one had pending are not owed to anyone any more.
    pending = [pending_demand(await otp.call(sink, "batches"), 10, 5) for sink in others]
    assert await otp.call(producer, "owed") == sum(pending)


def pending_demand(batches: list[tuple[Subscription, list[Any]]], high: int, low: int) -> int:
    """What a consumer has asked for and not received, after these batches."""
    pending = high
    for _, batch in batches:
        pending -= len(batch)
        if pending <= low:
            pending = high
    return pending


async def test_a_consumer_exit_removes_its_subscription() -> None:
    producer = await Backlog.start(None)
    leaving = await Recorder.start([(producer, {"max_demand": 10})])
    staying = await Recorder.start([(producer, {"max_demand": 10})])
    await otp.stop(leaving)
    push(producer, range(25))
    await settle()
    assert await events_of(staying) == list(range(25))
    assert await buffered_count(producer) == 0
    # The producer was asked for 20; the 10 the leaving consumer asked for went to the other.
    batches = await otp.call(staying, "batches")
    assert await otp.call(producer, "owed") == pending_demand(batches, 10, 5)


# -- callbacks and results ----------------------------------------------------------------------


async def test_emit_from_handle_call_replies_after_dispatching() -> None:
    producer = await Backlog.start(None)
    sink = await Recorder.start([producer])
    assert await otp.call(producer, ("emit", ["x", "y"])) == "emitted"
    await settle()
    assert await events_of(sink) == ["x", "y"]


async def test_emit_carries_continue_and_timeout(clock: otp.MockClock) -> None:
    class Ticker(Stage):
        def init(self, arg: Any) -> ProducerInit:
            self.log: list[Any] = []
            return ProducerInit()

        def handle_demand(self, n: int) -> Emit | None:
            return None if self.log else Emit([], continue_="first")

        def handle_continue(self, term: Any) -> Emit:
            self.log.append(term)
            return Emit(["tick"], timeout=2.0)

        def handle_info(self, message: Any) -> None:
            self.log.append((message, clock.monotonic()))

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return self.log

    ticker = await Ticker.start()
    started = clock.monotonic()
    # Asks for 2 and gets 1: no new ask, so nothing cancels the idle timeout.
    sink = await Recorder.start([(ticker, {"max_demand": 2, "min_demand": 0})])
    await settle()
    log = await otp.call(ticker, "log")
    assert log == ["first", ("timeout", started + 2.0)]
    assert await events_of(sink) == ["tick"]


async def test_a_consumer_that_emits_logs_and_drops(caplog: pytest.LogCaptureFixture) -> None:
    class Loud(Recorder):
        def handle_events(self, events: list[Any], from_: Subscription) -> list[Any]:
            return events

    producer = await Backlog.start(None)
    await Loud.start([producer])
    push(producer, [1])
    await settle()
    assert "is a consumer: it cannot emit events" in caplog.text


async def test_a_bad_result_crashes_the_stage_with_a_clear_error() -> None:
    class Confused(Stage):
        def init(self, arg: Any) -> ProducerInit:
            return ProducerInit()

        def handle_demand(self, n: int) -> str:
            return "events"

    producer = await Confused.start()
    ref = otp.monitor(producer)
    await Recorder.start([(producer, {"cancel": "temporary"})])
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert isinstance(down.reason, TypeError)
    assert "handle_demand must return None, a list of events" in str(down.reason)


async def test_init_must_choose_a_stage_type() -> None:
    class Undecided(Stage):
        def init(self, arg: Any) -> None:
            return None

    with pytest.raises(otp.StartError) as failure:
        await Undecided.start()
    assert "must return ProducerInit, ProducerConsumerInit, ConsumerInit" in str(
        failure.value.reason
    )


async def test_init_may_ignore_or_stop() -> None:
    class Shy(Stage):
        def init(self, arg: Any) -> otp.Ignore | otp.Stop:
            return otp.Ignore() if arg == "ignore" else otp.Stop("no")

    with pytest.raises(otp.StartIgnored):
        await Shy.start("ignore")
    with pytest.raises(otp.StartError) as failure:
        await Shy.start("stop")
    assert failure.value.reason == "no"


def test_init_results_validate_their_options() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        ProducerInit(buffer_size=-1)
    with pytest.raises(ValueError, match="buffer_keep"):
        ProducerInit(buffer_keep="middle")
    with pytest.raises(ValueError, match="demand"):
        ProducerInit(demand="later")
    with pytest.raises(TypeError, match="dispatcher"):
        ProducerInit(dispatcher="demand")
    with pytest.raises(ValueError, match="max_demand"):
        ConsumerInit(subscribe_to=[("p", {"max_demand": 0})])
    with pytest.raises(TypeError, match="subscribe_to"):
        ConsumerInit(subscribe_to="p")


async def test_a_dispatcher_serves_one_producer() -> None:
    shared = DemandDispatcher()

    class Sharing(Stage):
        def init(self, arg: Any) -> ProducerInit:
            return ProducerInit(dispatcher=shared)

    await Sharing.start()
    with pytest.raises(otp.StartError) as failure:
        await Sharing.start()
    assert "create a dispatcher for each producer" in str(failure.value.reason)


async def test_stages_answer_calls_casts_and_stop() -> None:
    class Store(Stage):
        def init(self, arg: Any) -> ConsumerInit:
            self.items: list[Any] = []
            return ConsumerInit()

        def handle_cast(self, request: Any) -> None:
            self.items.append(request)

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return list(self.items)

    store = await Store.start(name="store")
    otp.cast("store", "a")
    assert await otp.call("store", "items") == ["a"]
    await otp.stop("store")
    assert not otp.is_alive(store)


async def test_crash_reports_describe_stage_messages(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Recorder):
        def handle_events(self, events: list[Any], from_: Subscription) -> None:
            raise RuntimeError("boom")

    producer = await Backlog.start(None)
    sink = await Failing.start([(producer, {"cancel": "temporary"})])
    ref = otp.monitor(sink)
    push(producer, [1, 2, 3])
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert "last message: 3 events on <Subscription" in caplog.text


# -- supervision --------------------------------------------------------------------------------


async def test_a_supervised_consumer_resubscribes_when_restarted() -> None:
    producer = await Backlog.start(None, name="jobs")
    sup = await Supervisor.start([child_spec(Recorder, [("jobs", {"max_demand": 5})], id="sink")])
    [first] = await which_children(sup)
    assert first.pid is not None
    otp.exit(first.pid, "kill")
    await settle()
    [second] = await which_children(sup)
    assert second.pid is not None
    assert second.pid is not first.pid
    push(producer, range(3))
    await settle()
    assert await events_of(second.pid) == [0, 1, 2]
    assert otp.process_info(second.pid).module.endswith("Recorder")


# -- stage_stream -------------------------------------------------------------------------------


async def test_stage_stream_iterates_until_the_producer_ends() -> None:
    class Finite(Counter):
        def handle_demand(self, demand: int) -> Any:
            events = super().handle_demand(demand)
            if self.next == self.limit:
                return Emit(events, continue_="done")
            return events

        def handle_continue(self, term: Any) -> otp.Stop:
            return otp.Stop("normal")

    producer = await Finite.start(("s", 25))
    seen = [event async for event in stage_stream([producer], max_demand=10)]
    assert seen == [("s", n) for n in range(25)]


async def test_stage_stream_raises_when_the_producer_crashes() -> None:
    producer = await Backlog.start(None)
    push(producer, [1, 2])

    async def consume() -> list[Any]:
        seen = []
        async for event in stage_stream([producer], max_demand=5):
            seen.append(event)
            if len(seen) == 2:
                otp.cast(producer, "crash")
        return seen

    with pytest.raises(otp.ProcessExit) as exit_:
        await consume()
    assert isinstance(exit_.value.reason, RuntimeError)


async def test_stage_stream_closed_early_leaves_the_mailbox_clean() -> None:
    producer = await Backlog.start(None)
    push(producer, range(100))
    otp.send(otp.self(), "mine")
    async with aclosing(stage_stream([(producer, {"max_demand": 10})])) as events:
        async for event in events:
            if event == 3:
                break
    await settle()
    assert await otp.receive(timeout=0) == "mine"
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)
    assert await otp.call(producer, "backlog") < 100  # it took what it was asked for


async def test_stage_stream_needs_its_producers() -> None:
    with pytest.raises(NoProcess):
        async for _ in stage_stream(["nobody"]):
            pass
    assert [e async for e in stage_stream([("nobody", {"cancel": "temporary"})])] == []


async def test_an_unexpected_message_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    consumer = await Recorder.start(None)
    otp.send(consumer, "hello")
    await settle()
    assert "received unexpected message: 'hello'" in caplog.text
    assert otp.is_alive(consumer)
