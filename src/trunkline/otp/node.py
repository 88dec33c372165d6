"""The node: one event loop's processes, their names, and its clock.

One OS process runs one node. The node is created on first use for the running event loop (or
explicitly, with a chosen clock) and is what every runtime function consults: the process table
for introspection, the table of local names, and the clock.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from ._deadlines import Deadlines
from .clock import Clock, MockClock, SystemClock
from .exceptions import NoNode

if TYPE_CHECKING:
    from .process import Pid

# One node per event loop. `_current` is the last one used: nearly every lookup hits it.
_current: Node | None = None
_nodes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Node] = weakref.WeakKeyDictionary()


class Node:
    """The runtime of one event loop.

    Args:
        clock: the clock for every timeout and timer; by default the system clock, or the
            :class:`~trunkline.otp.MockClock` that owns the loop when running on one.
        loop: the event loop; by default the running one.
    """

    def __init__(
        self, clock: Clock | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        if clock is None:
            mock = getattr(self.loop, "_mock_clock", None)
            clock = mock if isinstance(mock, MockClock) else SystemClock(self.loop)
        self.clock: Clock = clock
        self.deadlines = Deadlines(clock)
        self.processes: set[Pid] = set()
        self.names: dict[object, Pid] = {}
        self.stopping = False
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        # Deaths are processed from a queue, not by recursion: a chain of 100,000 linked
        # processes must not overflow the stack when its head crashes.
        self._dying: deque[tuple[Pid, Any]] = deque()
        self._draining = False

    def next_id(self) -> int:
        return next(self._ids)

    def next_ref(self) -> int:
        return next(self._refs)

    def whereis(self, name: object) -> Pid | None:
        """The live process registered under ``name``, or ``None``."""
        return self.names.get(name)

    def __repr__(self) -> str:
        return f"<Node processes={len(self.processes)} clock={self.clock!r}>"


def current_node() -> Node:
    """The node of the running event loop, created on first use.

    Raises:
        NoNode: when called with no running event loop.
    """
    global _current
    node = _current
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise NoNode("the trunkline runtime needs a running asyncio event loop") from None
    if node is None or node.loop is not loop:
        # Another loop (a thread running asyncio.run, say) must not take this loop's node.
        node = _nodes.get(loop)
        if node is None:
            return start_node(loop=loop)
        _current = node
    return node


def start_node(clock: Clock | None = None, loop: asyncio.AbstractEventLoop | None = None) -> Node:
    """Make a fresh node for ``loop`` (default: the running one) the current node."""
    global _current
    node = _current = Node(clock, loop)
    _nodes[node.loop] = node
    return node


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop on real time: uvloop where available, else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
