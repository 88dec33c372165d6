"""PubSub adapters: the ways a :class:`~trunkline.otp.pubsub.PubSub` reaches other nodes.

- :class:`LocalAdapter`: this node only; the default.
- :class:`MemoryAdapter` on a :class:`MemoryBus`: several nodes in one event loop, for tests.
"""

from .local import LocalAdapter
from .memory import MemoryAdapter, MemoryBus

__all__ = ["LocalAdapter", "MemoryAdapter", "MemoryBus"]
