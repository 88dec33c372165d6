import enum
from collections.abc import Callable
from typing import Any

import pytest
from pubsub_conformance import (
    ClusterConformance,
    PubSubConformance,
    next_message,
    next_messages,
    probe,
)

from trunkline import otp
from trunkline.otp import testing
from trunkline.otp.exceptions import BroadcastError
from trunkline.otp.pubsub import PubSub
from trunkline.otp.pubsub_adapter import PubSubAdapter
from trunkline.otp.pubsub_adapters import LocalAdapter, MemoryAdapter, MemoryBus

# -- the adapter contract, for the adapters shipped in the package ---------------------------------


class TestLocalAdapter(PubSubConformance):
    def new_cluster(self) -> Callable[[str], PubSubAdapter]:
        return LocalAdapter


class TestMemoryAdapter(ClusterConformance):
    def new_cluster(self) -> Callable[[str], PubSubAdapter]:
        bus = MemoryBus(pickle_messages=True)
        return lambda node_name: MemoryAdapter(bus, node_name)


# -- PubSub itself ---------------------------------------------------------------------------------


def test_name_is_validated() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        PubSub("")


async def test_defaults_to_the_local_adapter() -> None:
    pubsub = PubSub("app")
    assert isinstance(pubsub.adapter, LocalAdapter)
    assert pubsub.node_name == "nonode@nohost"
    assert repr(pubsub) == "<PubSub 'app' on 'nonode@nohost', 0 topics>"


async def test_subscribe_is_idempotent_and_replaces_metadata() -> None:
    pubsub = PubSub("app")
    pubsub.subscribe("t", metadata=1)
    pubsub.subscribe("t", metadata=2)
    assert pubsub.subscribers("t") == [otp.self()]
    seen: list[list[tuple[otp.Pid, Any]]] = []
    pubsub.broadcast("t", "hi", dispatcher=lambda entries, _from, _msg: seen.append(entries))
    assert seen == [[(otp.self(), 2)]]
    pubsub.broadcast("t", "once")
    assert await otp.receive(timeout=0) == "once"
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)


async def test_unsubscribe() -> None:
    pubsub = PubSub("app")
    pubsub.subscribe("t")
    pubsub.subscribe("u")
    pubsub.unsubscribe("t")
    pubsub.unsubscribe("t")  # twice: nothing happens
    pubsub.unsubscribe("never")
    pubsub.broadcast("t", "unwanted")
    pubsub.broadcast("u", "wanted")
    assert await otp.receive(timeout=0) == "wanted"
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)
    assert pubsub.subscriber_count("t") == 0
    assert pubsub.subscriber_count("u") == 1


async def test_subscribers_and_count() -> None:
    pubsub = PubSub("app")
    first = await probe(pubsub, "t")
    second = await probe(pubsub, "t", "u")
    assert pubsub.subscribers("t") == [first, second]
    assert pubsub.subscribers("u") == [second]
    assert pubsub.subscribers("none") == []
    assert pubsub.subscriber_count("t") == 2
    assert pubsub.subscriber_count("none") == 0


async def test_broadcast_to_a_topic_without_subscribers_is_fine() -> None:
    pubsub = PubSub("app")
    pubsub.broadcast("nobody", "hello")
    pubsub.broadcast_from(otp.self(), "nobody", "hello")


async def test_broadcast_from_skips_the_sender_even_if_subscribed() -> None:
    pubsub = PubSub("app")
    pubsub.subscribe("t")
    other = await probe(pubsub, "t")
    pubsub.broadcast_from(otp.self(), "t", "from me")
    assert await next_message(other) == "from me"
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)


async def test_messages_keep_their_order_per_subscriber() -> None:
    pubsub = PubSub("app")
    pubsub.subscribe("t")
    pubsub.subscribe("u")
    for i in range(50):
        pubsub.broadcast("t" if i % 2 else "u", i)
    assert [await otp.receive(timeout=0) for _ in range(50)] == list(range(50))


# -- subscriptions vanish with their process -------------------------------------------------------


async def test_subscriptions_vanish_when_the_subscriber_is_killed() -> None:
    pubsub = PubSub("app")
    doomed = await probe(pubsub, "t", "u")
    survivor = await probe(pubsub, "t")
    otp.exit(doomed, otp.KILL)
    assert pubsub.subscribers("t") == [survivor]
    assert pubsub.subscriber_count("u") == 0
    pubsub.broadcast("t", "still here")
    assert await next_message(survivor) == "still here"


async def test_subscriptions_vanish_when_the_subscriber_crashes() -> None:
    pubsub = PubSub("app")

    async def fragile() -> None:
        pubsub.subscribe("t")
        await otp.receive(lambda m: m == "crash")
        raise RuntimeError("subscriber crashed on purpose")

    pid, ref = otp.spawn_monitor(fragile)
    await testing.wait_until(lambda: pubsub.subscriber_count("t") == 1)
    otp.send(pid, "crash")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert isinstance(down.reason, RuntimeError)
    assert pubsub.subscribers("t") == []
    assert repr(pubsub).endswith("0 topics>")


async def test_a_resubscribed_process_is_still_cleaned_up() -> None:
    # Leaving its last topic drops the process's exit hook; subscribing again must re-add it.
    pubsub = PubSub("app")
    owner = otp.self()

    async def fickle() -> None:
        pubsub.subscribe("t")
        pubsub.unsubscribe("t")
        pubsub.subscribe("u")
        otp.send(owner, "ready")
        await otp.receive()

    pid = otp.spawn(fickle)
    assert await otp.receive(timeout=1) == "ready"
    assert pubsub.subscribers("u") == [pid]
    otp.exit(pid, otp.KILL)
    assert pubsub.subscribers("u") == []


async def test_pubsubs_are_independent() -> None:
    first, second = PubSub("first"), PubSub("second")
    owner = otp.self()

    async def member() -> None:
        first.subscribe("t")
        second.subscribe("t")
        first.unsubscribe("t")  # must not drop its hook in `second`
        otp.send(owner, "ready")
        await otp.receive()

    pid = otp.spawn(member)
    assert await otp.receive(timeout=1) == "ready"
    otp.exit(pid, otp.KILL)
    assert second.subscribers("t") == []


# -- with servers and nodes ------------------------------------------------------------------------


class Listener(otp.GenServer):
    """Subscribes to "events" and forwards what it gets to its owner, as ``probe`` does."""

    def init(self, arg: tuple[PubSub, otp.Pid]) -> None:
        pubsub, self.owner = arg
        pubsub.subscribe("events")

    def handle_info(self, message: Any) -> None:
        otp.send(self.owner, (self.pid, message))


async def test_a_server_subscribed_in_init_gets_broadcasts_in_handle_info() -> None:
    pubsub = PubSub("app")
    server = await Listener.start((pubsub, otp.self()))
    pubsub.broadcast("events", "one")
    pubsub.broadcast("events", "two")
    assert await next_messages(server, 2) == ["one", "two"]
    await otp.stop(server)
    assert pubsub.subscriber_count("events") == 0


async def test_two_nodes_on_a_memory_bus() -> None:
    bus = MemoryBus()
    async with (
        PubSub("app", adapter=MemoryAdapter(bus, "a@test")) as node_a,
        PubSub("app", adapter=MemoryAdapter(bus, "b@test")) as node_b,
    ):
        assert bus.node_names("app") == ["a@test", "b@test"]
        on_a = await Listener.start((node_a, otp.self()))
        on_b = await Listener.start((node_b, otp.self()))

        node_a.broadcast("events", "to all")
        node_a.broadcast_from(on_a, "events", "to all but on_a")
        node_a.local_broadcast("events", "to node a only")
        node_b.direct_broadcast("a@test", "events", "from b to node a")
        node_b.broadcast("events", "end")

        # Other nodes' broadcasts arrive asynchronously, as over a network.
        assert await next_messages(on_a, 4) == [
            "to all",
            "to node a only",
            "from b to node a",
            "end",
        ]
        assert await next_messages(on_b, 3) == ["end", "to all", "to all but on_a"]
    assert bus.node_names("app") == []


async def test_a_memory_adapter_must_be_started_to_broadcast() -> None:
    bus = MemoryBus()
    node = PubSub("app", adapter=MemoryAdapter(bus, "a@test"))
    with pytest.raises(BroadcastError, match="not started"):
        node.broadcast("t", "hello")
    with pytest.raises(BroadcastError):
        node.direct_broadcast("b@test", "t", "hello")
    node.local_broadcast("t", "fine")  # this node needs no adapter


async def test_a_memory_bus_refuses_two_nodes_of_one_name() -> None:
    bus = MemoryBus()
    await PubSub("app", adapter=MemoryAdapter(bus, "a@test")).start()
    with pytest.raises(ValueError, match="already runs"):
        await PubSub("app", adapter=MemoryAdapter(bus, "a@test")).start()
    await PubSub("other", adapter=MemoryAdapter(bus, "a@test")).start()  # another PubSub: fine


async def test_a_default_memory_bus_passes_messages_by_reference() -> None:
    # What cannot cross a real network (a pid) can cross this one, unless pickle_messages.
    bus = MemoryBus()
    async with (
        PubSub("app", adapter=MemoryAdapter(bus, "a@test")) as node_a,
        PubSub("app", adapter=MemoryAdapter(bus, "b@test")) as node_b,
    ):
        on_b = await Listener.start((node_b, otp.self()))
        message = ("reply to", otp.self())
        node_a.broadcast("events", message)
        [received] = await next_messages(on_b, 1)
        assert received is message

    strict = MemoryBus(pickle_messages=True)
    async with PubSub("app", adapter=MemoryAdapter(strict, "a@test")) as node:
        with pytest.raises(BroadcastError, match="cannot go to other nodes"):
            node.broadcast("events", ("reply to", otp.self()))


async def test_unsubscribing_one_topic_keeps_the_others_including_prefixes() -> None:
    pubsub = PubSub("prefixes")
    pubsub.subscribe("room:12")
    pubsub.unsubscribe("room:1")  # a prefix of the one followed: nothing to undo
    assert pubsub.subscribers("room:12") == [otp.self()]
    pubsub.subscribe("room:1")
    pubsub.subscribe("room:123")
    pubsub.unsubscribe("room:12")
    assert pubsub.subscribers("room:12") == []
    assert pubsub.subscribers("room:1") == pubsub.subscribers("room:123") == [otp.self()]
    pubsub.unsubscribe("room:1")
    pubsub.unsubscribe("room:123")
    pubsub.broadcast("room:123", "nobody")
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)
    pubsub.subscribe("room:7")  # subscribing again after all is gone works
    pubsub.broadcast("room:7", "hello")
    assert await otp.receive(timeout=0) == "hello"


async def test_a_topic_of_a_str_subclass_is_cleaned_up_when_its_process_ends() -> None:
    class Topic(enum.StrEnum):
        NEWS = "news"

    pubsub = PubSub("str-subclass")

    async def follower() -> None:
        pubsub.subscribe(Topic.NEWS)
        await otp.receive()

    pid = otp.spawn(follower)
    await testing.wait_until(lambda: pubsub.subscriber_count("news") == 1)
    otp.exit(pid, otp.KILL)
    await testing.wait_until(lambda: not otp.is_alive(pid))
    assert pubsub.subscriber_count("news") == 0
