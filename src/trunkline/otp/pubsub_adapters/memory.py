"""An in-memory cluster: several nodes' PubSubs in one event loop, for tests.

Code that runs on many nodes (presence, cache invalidation, fan-out to sockets held by other
nodes) can be tested in one process without Redis or NATS: give each simulated node's PubSub a
:class:`MemoryAdapter` on one shared :class:`MemoryBus`.

Example::

    bus = MemoryBus()
    node_a = PubSub("app", adapter=MemoryAdapter(bus, "a@test"))
    node_b = PubSub("app", adapter=MemoryAdapter(bus, "b@test"))
    await node_a.start()
    await node_b.start()

    node_b.subscribe("news")            # the calling process, "on node b"
    node_a.broadcast("news", "hello")
    assert await receive(timeout=1) == "hello"

``MemoryBus(pickle_messages=True)`` makes the bus as strict as a network: every message is
pickled when broadcast and unpickled on each node that gets it.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import TYPE_CHECKING, Any

from ..exceptions import BroadcastError
from ..pubsub_adapter import PubSubAdapter

if TYPE_CHECKING:
    from ..pubsub import Dispatcher, PubSub

__all__ = ["MemoryAdapter", "MemoryBus"]


class MemoryBus:
    """The network between :class:`MemoryAdapter` nodes.

    A broadcast reaches the PubSubs of the same name on the other nodes in order, on a later
    turn of the event loop - never synchronously, as over a real network - so tests see the
    same asynchrony as in production. Use one bus per test.

    Args:
        pickle_messages: round-trip each broadcast (message and dispatcher) through pickle, as
            an adapter to a real network must serialize it. A message that cannot be pickled
            then fails the broadcast with :class:`~trunkline.otp.exceptions.BroadcastError`,
            and each node gets its own copy, so a sender that changes the message afterwards
            changes nothing elsewhere. Off by default: messages pass by reference, and may
            hold what cannot cross a network, such as pids. The adapter conformance suite
            turns it on.
    """

    def __init__(self, *, pickle_messages: bool = False) -> None:
        self._clusters: dict[str, dict[str, PubSub]] = {}  # pubsub name -> node name -> pubsub
        self.pickle_messages = pickle_messages

    def __repr__(self) -> str:
        return f"<MemoryBus {self._clusters!r}>"

    def node_names(self, pubsub_name: str) -> list[str]:
        """The nodes on which a PubSub named ``pubsub_name`` is started on this bus."""
        return list(self._clusters.get(pubsub_name, ()))

    def _join(self, node_name: str, pubsub: PubSub) -> None:
        nodes = self._clusters.setdefault(pubsub.name, {})
        if node_name in nodes:
            raise ValueError(
                f"node {node_name!r} already runs a PubSub named {pubsub.name!r} on this bus"
            )
        nodes[node_name] = pubsub

    def _leave(self, node_name: str, pubsub: PubSub) -> None:
        nodes = self._clusters.get(pubsub.name)
        if nodes is not None and nodes.get(node_name) is pubsub:
            del nodes[node_name]
            if not nodes:
                del self._clusters[pubsub.name]

    def _arrive(self, node_name: str, pubsub: PubSub, topic: str, packet: Any) -> None:
        nodes = self._clusters.get(pubsub.name)
        # A node that left while the message was on its way does not get it.
        if nodes is not None and nodes.get(node_name) is pubsub:
            message, dispatcher = pickle.loads(packet) if self.pickle_messages else packet
            pubsub.local_broadcast(topic, message, dispatcher=dispatcher)


class MemoryAdapter(PubSubAdapter):
    """One node on a :class:`MemoryBus`.

    Args:
        bus: the bus shared by the simulated nodes.
        node_name: this node's name, unique on the bus for each PubSub name.
    """

    def __init__(self, bus: MemoryBus, node_name: str) -> None:
        self._bus = bus
        self._node_name = node_name
        self._pubsub: PubSub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = "started" if self._pubsub is not None else "stopped"
        return f"<MemoryAdapter {self._node_name!r} {state}>"

    @property
    def node_name(self) -> str:
        return self._node_name

    async def start(self, pubsub: PubSub) -> None:
        """Join the bus.

        Raises:
            ValueError: this node name already runs a PubSub of that name on the bus.
        """
        if self._pubsub is pubsub:
            return
        if self._pubsub is not None:
            raise ValueError(f"{self!r} is already started for {self._pubsub!r}")
        self._bus._join(self._node_name, pubsub)
        self._pubsub = pubsub
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        if self._pubsub is not None:
            self._bus._leave(self._node_name, self._pubsub)
            self._pubsub = None

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher | None) -> None:
        pubsub, loop = self._started()
        packet = self._pack(topic, message, dispatcher)
        arrive = self._bus._arrive
        for node_name, peer in self._bus._clusters[pubsub.name].items():
            if peer is not pubsub:
                loop.call_soon(arrive, node_name, peer, topic, packet)

    def direct_broadcast(
        self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        pubsub, loop = self._started()
        packet = self._pack(topic, message, dispatcher)
        peer = self._bus._clusters[pubsub.name].get(node_name)
        if peer is not None:
            loop.call_soon(self._bus._arrive, node_name, peer, topic, packet)

    def _started(self) -> tuple[PubSub, asyncio.AbstractEventLoop]:
        if self._pubsub is None or self._loop is None:
            raise BroadcastError(f"{self!r} is not started: await pubsub.start() first")
        return self._pubsub, self._loop

    def _pack(self, topic: str, message: Any, dispatcher: Dispatcher | None) -> Any:
        """What travels: pickled once here, as a network adapter encodes before sending."""
        if not self._bus.pickle_messages:
            return message, dispatcher
        try:
            return pickle.dumps((message, dispatcher), pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # PicklingError, TypeError, AttributeError (a local class)...
            raise BroadcastError(
                f"{self!r}: a message on {topic!r} cannot go to other nodes: {e}"
            ) from e
