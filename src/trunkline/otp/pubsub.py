"""PubSub: topics whose broadcasts land in the mailboxes of subscribed processes.

Like ``Phoenix.PubSub``: a process subscribes *itself* to a topic; anyone broadcasts to the
topic; each subscriber receives the message as an ordinary message, in the order each
broadcaster sent them. A process that ends is unsubscribed from everything at once, however it
ends. The PubSub delivers on its own node directly and hands broadcasts for other nodes to its
:class:`~trunkline.otp.pubsub_adapter.PubSubAdapter`, which delivers them to the PubSubs of
the same name there.

Subscribing is idempotent, unlike Phoenix (which delivers each message once per subscription
and asks callers not to subscribe twice). A process that subscribes in ``init`` and again
after a reconnect, or from two code paths, should not see every message twice; and a set of
subscribers keyed by pid makes ``unsubscribe`` and cleanup O(1). Subscribing again only
replaces the subscription's metadata.

Like a Registry, a PubSub is a plain object, not a server: ``broadcast`` is a loop over the
topic's subscribers on the caller's own stack, with no hop through a process.

Example::

    pubsub = PubSub("app")

    class RoomServer(GenServer):
        def init(self, room: str) -> None:
            pubsub.subscribe(f"room:{room}")

        def handle_info(self, message) -> None:
            match message:
                case ("said", nick, text): ...

    pubsub.broadcast("room:lobby", ("said", "ada", "hello"))

With other nodes, give it an adapter and start it::

    pubsub = PubSub("app", adapter=RedisAdapter(...))
    await pubsub.start()
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias

from .process import Pid, add_exit_hook, remove_exit_hook
from .process import self as _caller
from .pubsub_adapter import PubSubAdapter
from .pubsub_adapters.local import LocalAdapter

__all__ = ["Dispatcher", "PubSub"]

Dispatcher: TypeAlias = Callable[[list[tuple[Pid, Any]], "Pid | None", Any], object]
"""Delivers a broadcast on one node: ``dispatcher(subscribers, from_pid, message)``.

``subscribers`` are the topic's ``(pid, metadata)`` pairs on that node; ``from_pid`` is the
pid to skip (``broadcast_from``) or ``None``. It runs on every node the broadcast reaches, so
to cross nodes it must be a module-level function (adapters that serialize send it by name).
The default delivers ``message`` to every subscriber but ``from_pid``.
"""


class PubSub:
    """Topics and their subscribers on this node, and an adapter to reach other nodes.

    Args:
        name: the PubSub's name; PubSubs of the same name on different nodes form one
            cluster-wide PubSub.
        adapter: how broadcasts reach other nodes; by default a
            :class:`~trunkline.otp.pubsub_adapters.LocalAdapter` (this node only).

    Topics are strings, so that they mean the same on every node and in every adapter.

    Example::

        pubsub = PubSub("app")
        pubsub.subscribe("user:42")
        pubsub.broadcast("user:42", ("renamed", "Ada"))
        assert await receive(timeout=1) == ("renamed", "Ada")
    """

    def __init__(self, name: str, *, adapter: PubSubAdapter | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"PubSub name must be a non-empty string, not {name!r}")
        self.name = name
        self.adapter: PubSubAdapter = adapter if adapter is not None else LocalAdapter()
        self._topics: dict[str, dict[Pid, Any]] = {}  # topic -> {subscriber: metadata}
        # Subscriber -> its topic, or a set of its topics, for cleanup: most processes follow
        # one topic, and a set (216 bytes) for each of 10,000 sockets adds up.
        self._by_pid: dict[Pid, str | set[str]] = {}
        self._on_exit = self._process_ended  # bound once, not per subscribing process

    def __repr__(self) -> str:
        return f"<PubSub {self.name!r} on {self.node_name!r}, {len(self._topics)} topics>"

    @property
    def node_name(self) -> str:
        """This node's name, as the adapter knows it (the address for ``direct_broadcast``)."""
        return self.adapter.node_name

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the adapter (join the cluster).

        Needed before broadcasting through an adapter that reaches other nodes; the default
        local adapter works without it.
        """
        await self.adapter.start(self)

    async def stop(self) -> None:
        """Stop the adapter. Local subscriptions stay; other nodes are no longer reached."""
        await self.adapter.stop()

    async def __aenter__(self) -> PubSub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- subscriptions: always the calling process -------------------------------------------------

    def subscribe(self, topic: str, *, metadata: Any = None) -> None:
        """Subscribe the calling process to ``topic``.

        Idempotent: subscribing again only replaces ``metadata``, the term that custom
        dispatchers see beside each subscriber.
        """
        pid = _caller()
        topics = self._by_pid.get(pid)
        if topics is None:
            # One exit hook per process per PubSub, however many topics it follows.
            if not add_exit_hook(pid, self, self._on_exit):
                return  # the caller killed itself a moment ago: it will receive nothing
            self._by_pid[pid] = topic
        elif isinstance(topics, str):
            if topics != topic:
                self._by_pid[pid] = {topics, topic}
        else:
            topics.add(topic)
        subscribers = self._topics.get(topic)
        if subscribers is None:
            self._topics[topic] = {pid: metadata}
        else:
            subscribers[pid] = metadata

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe the calling process from ``topic``; not subscribed, do nothing."""
        pid = _caller()
        topics = self._by_pid.get(pid)
        if topics is None:
            return
        if isinstance(topics, str):
            if topics != topic:
                return
            topics = None
        elif topic in topics:
            topics.discard(topic)
        else:
            return
        if not topics:  # it follows nothing more
            del self._by_pid[pid]
            remove_exit_hook(pid, self)
        subscribers = self._topics[topic]
        del subscribers[pid]
        if not subscribers:
            del self._topics[topic]

    def subscribers(self, topic: str) -> list[Pid]:
        """The processes on this node subscribed to ``topic``, in subscription order."""
        subscribers = self._topics.get(topic)
        return list(subscribers) if subscribers else []

    def subscriber_count(self, topic: str) -> int:
        """How many processes on this node are subscribed to ``topic``."""
        subscribers = self._topics.get(topic)
        return len(subscribers) if subscribers else 0

    # -- broadcasting ------------------------------------------------------------------------------

    def broadcast(self, topic: str, message: Any, *, dispatcher: Dispatcher | None = None) -> None:
        """Deliver ``message`` to every subscriber of ``topic``, on every node.

        Subscribers on this node - the caller included, if subscribed - have it in their
        mailbox when this returns; other nodes get it asynchronously, through the adapter.

        Raises:
            BroadcastError: the adapter cannot send to other nodes; nothing was delivered.
        """
        self.adapter.broadcast(topic, message, dispatcher)
        self._dispatch(topic, message, None, dispatcher)

    def broadcast_from(
        self, from_pid: Pid, topic: str, message: Any, *, dispatcher: Dispatcher | None = None
    ) -> None:
        """:meth:`broadcast` to every subscriber except ``from_pid`` (usually ``self()``).

        Raises:
            BroadcastError: the adapter cannot send to other nodes; nothing was delivered.
        """
        # from_pid lives on this node, so other nodes have nobody to skip.
        self.adapter.broadcast(topic, message, dispatcher)
        self._dispatch(topic, message, from_pid, dispatcher)

    def local_broadcast(
        self, topic: str, message: Any, *, dispatcher: Dispatcher | None = None
    ) -> None:
        """Deliver ``message`` to the subscribers of ``topic`` on this node only.

        Adapters call this with the broadcasts that arrive from other nodes.
        """
        self._dispatch(topic, message, None, dispatcher)

    def local_broadcast_from(
        self, from_pid: Pid, topic: str, message: Any, *, dispatcher: Dispatcher | None = None
    ) -> None:
        """:meth:`local_broadcast` to every subscriber except ``from_pid``."""
        self._dispatch(topic, message, from_pid, dispatcher)

    def direct_broadcast(
        self, node_name: str, topic: str, message: Any, *, dispatcher: Dispatcher | None = None
    ) -> None:
        """Deliver ``message`` to the subscribers of ``topic`` on the node ``node_name`` only.

        An unknown or unreachable node drops the message, as a send to it would.

        Raises:
            BroadcastError: the adapter cannot send to other nodes.
        """
        if node_name == self.adapter.node_name:
            self._dispatch(topic, message, None, dispatcher)
        else:
            self.adapter.direct_broadcast(node_name, topic, message, dispatcher)

    def _dispatch(
        self, topic: str, message: Any, from_pid: Pid | None, dispatcher: Dispatcher | None
    ) -> None:
        subscribers = self._topics.get(topic)
        if not subscribers:
            return
        if dispatcher is not None:
            # A snapshot: the dispatcher is user code and may (un)subscribe or kill.
            dispatcher(list(subscribers.items()), from_pid, message)
        elif from_pid is None:
            # _deliver only appends and wakes a future, so the dict cannot change under us.
            for pid in subscribers:
                pid._deliver(message)
        else:
            for pid in subscribers:
                if pid is not from_pid:
                    pid._deliver(message)

    def _process_ended(self, pid: Pid, reason: Any) -> None:
        topics = self._by_pid.pop(pid, None)
        if topics is None:
            return
        all_topics = self._topics
        for topic in (topics,) if isinstance(topics, str) else topics:
            subscribers = all_topics[topic]
            del subscribers[pid]
            if not subscribers:
                del all_topics[topic]
