"""The PubSub adapter contract, as tests that every adapter must pass.

Subclass :class:`PubSubConformance` (an adapter for one node) or :class:`ClusterConformance`
(an adapter that joins nodes: Memory, Redis, NATS...) in a ``Test...`` class and implement
``new_cluster``::

    class TestMemoryAdapter(ClusterConformance):
        def new_cluster(self) -> Callable[[str], PubSubAdapter]:
            bus = MemoryBus(pickle_messages=True)  # as strict as a network
            return lambda node_name: MemoryAdapter(bus, node_name)

Each test builds its nodes as ``PubSub("conformance", adapter=factory(node_name))`` and starts
them, all in one event loop. Checks that something did *not* arrive use a barrier instead of a
timeout: a later message on a path that the contract orders after the unwanted one (another
node's broadcast, sent after the first was seen to arrive), so the suite runs as fast with a
real broker as in memory, and cannot pass by waiting too little.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from trunkline.otp import Pid, receive, self, send, spawn
from trunkline.otp.exceptions import BroadcastError
from trunkline.otp.pubsub import PubSub
from trunkline.otp.pubsub_adapter import PubSubAdapter

__all__ = [
    "ClusterConformance",
    "PubSubConformance",
    "next_message",
    "next_messages",
    "probe",
    "with_metadata",
]

PUBSUB = "conformance"
WAIT_S = 5.0  # for messages that must arrive; generous, it only matters when failing


async def probe(pubsub: PubSub, *topics: str, metadata: Any = None) -> Pid:
    """A process subscribed to ``topics`` on ``pubsub`` that forwards all it gets to the caller."""
    owner = self()

    async def forward() -> None:
        for topic in topics:
            pubsub.subscribe(topic, metadata=metadata)
        send(owner, (self(), "$subscribed"))
        while True:
            send(owner, (self(), await receive()))

    pid = spawn(forward)
    assert await next_message(pid) == "$subscribed"
    return pid


async def next_message(probe: Pid, timeout_s: float = WAIT_S) -> Any:
    """The next message that ``probe`` received (forwarded to the caller)."""
    _, message = await receive(
        lambda m: type(m) is tuple and len(m) == 2 and m[0] is probe, timeout=timeout_s
    )
    return message


async def next_messages(probe: Pid, count: int) -> list[Any]:
    """The next ``count`` messages that ``probe`` received."""
    return [await next_message(probe) for _ in range(count)]


def with_metadata(subscribers: list[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    """A custom dispatcher: each subscriber gets ``(its metadata, message)``."""
    for pid, metadata in subscribers:
        if pid is not from_pid:
            send(pid, (metadata, message))


class PubSubConformance:
    """What every adapter must do on a single node: never get in the way of local delivery."""

    def new_cluster(self) -> Callable[[str], PubSubAdapter]:
        """A fresh, empty cluster for one test: a factory of adapters, given a node name."""
        raise NotImplementedError

    @asynccontextmanager
    async def nodes(self, count: int, name: str = PUBSUB) -> AsyncIterator[list[PubSub]]:
        make_adapter = self.new_cluster()
        pubsubs = [PubSub(name, adapter=make_adapter(f"node{i}@test")) for i in range(count)]
        for pubsub in pubsubs:
            await pubsub.start()
        try:
            yield pubsubs
        finally:
            for pubsub in pubsubs:
                await pubsub.stop()

    async def test_node_name(self) -> None:
        async with self.nodes(1) as [node]:
            assert isinstance(node.node_name, str)
            assert node.node_name
            assert node.node_name == node.adapter.node_name

    async def test_broadcast_reaches_local_subscribers_once_including_the_sender(self) -> None:
        async with self.nodes(1) as [node]:
            other = await probe(node, "t")
            node.subscribe("t")
            node.broadcast("t", "hello")
            assert await receive(timeout=0) == "hello"  # local delivery is synchronous
            assert await next_message(other) == "hello"
            node.broadcast("t", "end")
            assert await receive(timeout=0) == "end"
            assert await next_message(other) == "end"

    async def test_broadcast_from_skips_only_the_sender(self) -> None:
        async with self.nodes(1) as [node]:
            sender = await probe(node, "t")
            other = await probe(node, "t")
            node.broadcast_from(sender, "t", "hello")
            assert await next_message(other) == "hello"
            node.broadcast("t", "end")
            assert await next_message(sender) == "end"

    async def test_local_and_direct_broadcast_to_this_node(self) -> None:
        async with self.nodes(1) as [node]:
            subscriber = await probe(node, "t")
            node.local_broadcast("t", 1)
            node.local_broadcast_from(subscriber, "t", "skipped")
            node.direct_broadcast(node.node_name, "t", 2)
            assert await next_messages(subscriber, 2) == [1, 2]

    async def test_direct_broadcast_to_an_unknown_node_is_dropped(self) -> None:
        async with self.nodes(1) as [node]:
            subscriber = await probe(node, "t")
            node.direct_broadcast("nowhere@test", "t", "lost")
            node.local_broadcast("t", "end")
            assert await next_message(subscriber) == "end"

    async def test_order_is_preserved_per_subscriber(self) -> None:
        async with self.nodes(1) as [node]:
            subscribers = [await probe(node, "t") for _ in range(3)]
            for i in range(100):
                node.broadcast("t", i)
            for subscriber in subscribers:
                assert await next_messages(subscriber, 100) == list(range(100))

    async def test_custom_dispatcher_sees_subscribers_with_metadata(self) -> None:
        async with self.nodes(1) as [node]:
            sender = await probe(node, "t", metadata="s")
            other = await probe(node, "t", metadata="o")
            node.broadcast_from(sender, "t", "hi", dispatcher=with_metadata)
            node.broadcast("t", "all", dispatcher=with_metadata)
            assert await next_messages(other, 2) == [("o", "hi"), ("o", "all")]
            assert await next_message(sender) == ("s", "all")


class ClusterConformance(PubSubConformance):
    """What an adapter that joins nodes must do across them."""

    async def test_node_names_are_distinct(self) -> None:
        async with self.nodes(3) as nodes:
            assert len({node.node_name for node in nodes}) == 3

    async def test_broadcast_reaches_every_node_once(self) -> None:
        async with self.nodes(3) as [a, b, c]:
            on_a, on_b, on_c = [await probe(node, "t") for node in (a, b, c)]
            message = {"id": 1, "tags": ("x", "y")}
            a.broadcast("t", message)
            assert await next_message(on_a) == message
            assert await next_message(on_b) == message
            assert await next_message(on_c) == message
            # Barriers: a second copy to b or c, or an echo back to a, comes before these.
            a.broadcast("t", "end from a")
            assert await next_message(on_b) == "end from a"
            assert await next_message(on_c) == "end from a"
            b.broadcast("t", "end from b")
            assert await next_messages(on_a, 2) == ["end from a", "end from b"]

    async def test_broadcast_from_skips_only_the_sender_across_nodes(self) -> None:
        async with self.nodes(2) as [a, b]:
            sender = await probe(a, "t")
            neighbour = await probe(a, "t")
            remote = await probe(b, "t")
            a.broadcast_from(sender, "t", "hi")
            assert await next_message(neighbour) == "hi"
            assert await next_message(remote) == "hi"
            b.broadcast("t", "end")  # sent after "hi" arrived on b: a barrier for a's sender
            assert await next_message(sender) == "end"

    async def test_local_broadcast_stays_on_its_node(self) -> None:
        async with self.nodes(2) as [a, b]:
            here = await probe(a, "t")
            there = await probe(b, "t")
            a.local_broadcast("t", "local")
            a.local_broadcast_from(here, "t", "local from")
            a.broadcast("t", "end")
            assert await next_messages(here, 2) == ["local", "end"]
            assert await next_message(there) == "end"

    async def test_direct_broadcast_reaches_only_that_node(self) -> None:
        async with self.nodes(3) as [a, b, c]:
            on_a, on_b, on_c = [await probe(node, "t") for node in (a, b, c)]
            a.direct_broadcast(b.node_name, "t", "for b")
            assert await next_message(on_b) == "for b"
            # Barriers: a leak to a or c would have been sent before these.
            a.broadcast("t", "end from a")
            b.broadcast("t", "end from b")
            assert await next_messages(on_a, 2) == ["end from a", "end from b"]
            assert await next_messages(on_c, 2) == ["end from a", "end from b"]

    async def test_direct_broadcast_to_an_unknown_node_is_dropped_in_a_cluster(self) -> None:
        async with self.nodes(2) as [a, b]:
            there = await probe(b, "t")
            a.direct_broadcast("nowhere@test", "t", "lost")
            a.broadcast("t", "end")
            assert await next_message(there) == "end"

    async def test_order_is_preserved_across_nodes(self) -> None:
        async with self.nodes(2) as [a, b]:
            subscribers = [await probe(b, "t") for _ in range(3)]
            for i in range(200):
                a.broadcast("t", i)
            for subscriber in subscribers:
                assert await next_messages(subscriber, 200) == list(range(200))

    async def test_dispatcher_runs_on_the_receiving_node(self) -> None:
        async with self.nodes(2) as [a, b]:
            remote = await probe(b, "t", metadata="on b")
            a.broadcast("t", "hi", dispatcher=with_metadata)
            assert await next_message(remote) == ("on b", "hi")

    async def test_topics_do_not_mix(self) -> None:
        async with self.nodes(2) as [a, b]:
            only_t = await probe(b, "t")
            both = await probe(b, "t", "u")
            a.broadcast("u", "for u")
            a.broadcast("t", "for t")
            assert await next_messages(both, 2) == ["for u", "for t"]
            assert await next_message(only_t) == "for t"

    async def test_unsubscribe_applies_to_remote_broadcasts(self) -> None:
        async with self.nodes(2) as [a, b]:
            b.subscribe("t")
            b.subscribe("end")
            b.unsubscribe("t")
            a.broadcast("t", "unwanted")
            a.broadcast("end", "end")
            assert await receive(timeout=WAIT_S) == "end"

    async def test_pubsubs_of_another_name_are_not_reached(self) -> None:
        make_adapter = self.new_cluster()
        a_first = PubSub("first", adapter=make_adapter("a@test"))
        a_second = PubSub("second", adapter=make_adapter("a@test"))
        b_first = PubSub("first", adapter=make_adapter("b@test"))
        b_second = PubSub("second", adapter=make_adapter("b@test"))
        pubsubs = (a_first, a_second, b_first, b_second)
        for pubsub in pubsubs:
            await pubsub.start()
        try:
            first = await probe(b_first, "t")
            second = await probe(b_second, "t")
            a_first.broadcast("t", "for first")
            assert await next_message(first) == "for first"
            a_second.broadcast("t", "for second")
            assert await next_message(second) == "for second"
            a_first.broadcast("t", "end")
            assert await next_message(first) == "end"
        finally:
            for pubsub in pubsubs:
                await pubsub.stop()

    async def test_a_stopped_node_is_not_reached_and_can_rejoin(self) -> None:
        async with self.nodes(2) as [a, b]:
            there = await probe(b, "t")
            await b.stop()
            a.broadcast("t", "while away")
            await b.start()  # when start returns, b receives broadcasts again
            a.broadcast("t", "back")
            assert await next_message(there) == "back"

    async def test_other_nodes_get_the_message_as_it_was_when_broadcast(self) -> None:
        async with self.nodes(2) as [a, b]:
            there = await probe(b, "t")
            message = {"seen_by": ["a"]}
            a.broadcast("t", message)
            message["seen_by"].append("changed after the broadcast")
            assert await next_message(there) == {"seen_by": ["a"]}

    async def test_a_message_that_cannot_cross_the_network_fails_the_broadcast(self) -> None:
        async with self.nodes(2) as [a, b]:
            there = await probe(b, "t")
            a.subscribe("t")
            with pytest.raises(BroadcastError):
                a.broadcast("t", lambda: "a function is not data")
            with pytest.raises(TimeoutError):
                await receive(timeout=0)  # nor was it delivered on the sender's node
            a.broadcast("t", "end")
            assert await next_message(there) == "end"

    async def test_broadcast_without_start_raises_and_delivers_nothing(self) -> None:
        make_adapter = self.new_cluster()
        node = PubSub(PUBSUB, adapter=make_adapter("unstarted@test"))
        node.subscribe("t")
        with pytest.raises(BroadcastError):
            node.broadcast("t", "nope")
        with pytest.raises(TimeoutError):
            await receive(timeout=0)
