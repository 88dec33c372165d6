"""The adapter behaviour: how a :class:`~trunkline.otp.pubsub.PubSub` reaches other nodes.

A PubSub delivers to the subscribers of its own node itself; its adapter carries broadcasts to
the PubSubs of the same name on the other nodes of the cluster, and hands the broadcasts that
arrive from them to ``pubsub.local_broadcast``. Implementations live in
``trunkline.otp.pubsub_adapters``: ``LocalAdapter`` (one node, the default) and
``MemoryAdapter`` (nodes in one event loop, for tests).

The contract, checked by the shared conformance suite in ``tests/otp/pubsub_conformance.py``
that every adapter must pass:

- :meth:`~PubSubAdapter.broadcast` reaches every other node running a PubSub of the same name,
  once, and never this node (the PubSub has already delivered here).
- :meth:`~PubSubAdapter.direct_broadcast` reaches the one named node; a node that is unknown or
  unreachable drops the message without error, as a send to a disconnected node does.
- On the receiving node the adapter calls ``pubsub.local_broadcast(topic, message,
  dispatcher=dispatcher)``, so the dispatcher chosen by the sender runs there. A dispatcher is
  a module-level function, so that adapters that serialize can send it by qualified name.
- Messages from one node reach another in the order they were broadcast.
- ``broadcast`` and ``direct_broadcast`` are called from synchronous code and must not block:
  queue the message and return. Remote delivery is asynchronous and best effort, as sending to
  a remote pid is in Erlang. When a message cannot even be queued (not started, connection
  down), raise :class:`~trunkline.otp.exceptions.BroadcastError`.
- When :meth:`~PubSubAdapter.start` returns, broadcasts from other nodes reach this one; after
  :meth:`~PubSubAdapter.stop`, nothing more is handed to the PubSub; a stopped adapter can be
  started again (a supervisor restarts it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pubsub import Dispatcher, PubSub

__all__ = ["PubSubAdapter"]


class PubSubAdapter(ABC):
    """Base class for PubSub adapters; see the module documentation for the contract."""

    @property
    @abstractmethod
    def node_name(self) -> str:
        """This node's name, unique in the cluster: the address for ``direct_broadcast``."""

    @abstractmethod
    async def start(self, pubsub: PubSub) -> None:
        """Join the cluster on behalf of ``pubsub``.

        Connect, then hand every broadcast that arrives for ``pubsub.name`` to
        ``pubsub.local_broadcast``.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Leave the cluster: stop delivering to the PubSub and release connections."""

    @abstractmethod
    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher | None) -> None:
        """Send ``message`` on ``topic`` to every other node; do not wait for delivery.

        Raises:
            BroadcastError: the message cannot be sent at all (not started, disconnected).
        """

    @abstractmethod
    def direct_broadcast(
        self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        """Send ``message`` on ``topic`` to the node ``node_name`` only; do not wait.

        The PubSub delivers to its own node itself, so ``node_name`` is another node's.

        Raises:
            BroadcastError: the message cannot be sent at all (not started, disconnected).
        """
