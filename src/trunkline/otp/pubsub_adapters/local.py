"""The single-node adapter: a PubSub that reaches no other node. The default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..pubsub_adapter import PubSubAdapter

if TYPE_CHECKING:
    from ..pubsub import Dispatcher, PubSub

__all__ = ["LocalAdapter"]


class LocalAdapter(PubSubAdapter):
    """No other nodes: broadcasts stay here, and a direct broadcast elsewhere is dropped.

    Needs no :meth:`start`; starting and stopping it do nothing.

    Args:
        node_name: this node's name; ``"nonode@nohost"`` by default, as in Erlang when
            distribution is off.
    """

    def __init__(self, node_name: str = "nonode@nohost") -> None:
        self._node_name = node_name

    def __repr__(self) -> str:
        return f"<LocalAdapter {self._node_name!r}>"

    @property
    def node_name(self) -> str:
        return self._node_name

    async def start(self, pubsub: PubSub) -> None:
        return None

    async def stop(self) -> None:
        return None

    def broadcast(self, topic: str, message: Any, dispatcher: Dispatcher | None) -> None:
        return None

    def direct_broadcast(
        self, node_name: str, topic: str, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        return None  # a node we are not connected to: dropped, as a send to it would be
