"""Presence: which processes are on a topic, under which keys, with what metadata - on every node.

Like ``Phoenix.Presence``: a process (a connection, say) is *tracked* on a topic under a key (a
user id) with metadata (``{"device": "phone"}``). A key may be tracked by several processes (a
user's phone and laptop): its metadata is a list, one per tracking. Anyone reads the topic's
keys and metas; the topic's subscribers on a :class:`~trunkline.otp.pubsub.PubSub` receive a
:class:`PresenceDiff` when keys come, change or go. A process that ends leaves at once, however
it ends.

Writes and reads are made on the caller's stack, as in :class:`~trunkline.otp.Registry`:
``track`` is a few dictionary writes with no message to any process, so ten thousand
connections joining at once cost ten thousand dictionary writes, not ten thousand round trips;
``list``/``get`` are dictionary reads; the caller sees its own writes at once. Everything runs
on the node's event loop, so each operation is atomic. (Phoenix's tracker is a server that
owns its tables; here, as for the Registry, the runtime calls an exit hook when a tracked
process ends, so no server needs to sit between callers and the data.)

The Presence *process* (:meth:`Presence.start_link`) does the periodic work: every
``broadcast_interval_s`` it sends each topic's subscribers the net change since the last
diff, and sends this node's changes to the Presences of the same name on the other nodes of
the PubSub; it heartbeats, asks newly met nodes for their state, and forgets a node not heard
from for ``down_period_s``. What arrives from other nodes is applied by that process only.

Example::

    presence = Presence("chat", pubsub)
    await presence.start_link()              # or presence.child_spec() under a supervisor

    # in a connection process that joined room 7:
    pubsub.subscribe("room:7")
    online = presence.list("room:7")         # {user_id: [meta, ...]}
    presence.track(self(), "room:7", user_id, {"device": "phone"})

    # and in its handle_info:
    match message:
        case PresenceDiff(topic, joins, leaves):
            online.update(joins)             # keys that came online or changed: full metas
            for key in leaves:               # keys that went offline entirely
                online.pop(key, None)
"""

from __future__ import annotations

import builtins
import itertools
import logging
import secrets
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._child import ChildSpec
from .clock import Clock
from .exceptions import AlreadyStarted, BroadcastError
from .gen_server import GenServer
from .gen_server import stop as stop_server
from .node import current_node
from .process import Exit, Pid, add_exit_hook, is_normal_exit, remove_exit_hook
from .pubsub import Dispatcher, PubSub
from .timer import send_interval

__all__ = ["Presence", "PresenceDiff"]

log = logging.getLogger("trunkline.otp.presence")

Metas: TypeAlias = "list[Any]"
Row: TypeAlias = "tuple[str, Hashable, Any]"  # (topic, key, meta): one tracking
EntryId: TypeAlias = "tuple[str, int]"  # (node name, number): unique in the cluster


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    """What changed on ``topic`` since the last diff; the message a topic's subscribers get.

    Diffs are per key, and net over the interval:

    - ``joins``: the keys that came online, or whose metas changed, each with its *full*
      current list of metas (a second device of a user makes the user a join, with both).
    - ``leaves``: the keys that went away entirely, each with the metas it had last.

    A key is in one of the two at most. Applying a diff is ``state.update(joins)`` and
    ``state.pop(key)`` for each key of ``leaves``, which is idempotent: a diff that repeats
    what ``Presence.list`` already showed does no harm. One diff object goes to every
    subscriber: treat it as read-only.
    """

    topic: str
    joins: dict[Hashable, Metas]
    leaves: dict[Hashable, Metas]


# -- between nodes: plain data, so that any adapter can carry it ---------------------------------


@dataclass(frozen=True, slots=True)
class _Heartbeat:
    node: str
    epoch: str  # one per Presence object: a node that restarted under its old name differs
    seq: int  # how many deltas the node has sent


@dataclass(frozen=True, slots=True)
class _StateRequest:
    """Send me your state; also a heartbeat of the sender."""

    node: str
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class _State:
    node: str
    epoch: str
    seq: int
    entries: dict[int, Row]


@dataclass(frozen=True, slots=True)
class _Delta:
    node: str
    epoch: str
    seq: int
    joins: dict[int, Row]  # tracked or updated since the previous delta
    leaves: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Goodbye:
    node: str
    epoch: str


_PEER_MESSAGES = (_Heartbeat, _StateRequest, _State, _Delta, _Goodbye)
_TICK = "$presence:tick"


class _Replica:
    """What this node knows of another node's presences."""

    __slots__ = ("entries", "epoch", "heard_s", "seq")

    def __init__(self, epoch: str, seq: int, entries: dict[int, Row], heard_s: float) -> None:
        self.epoch = epoch
        self.seq = seq
        self.entries = entries
        self.heard_s = heard_s


class Presence:
    """Processes tracked on topics under keys, merged across the nodes of a PubSub.

    Args:
        name: Presences of the same name on the nodes of a PubSub share their state.
        pubsub: where diffs are delivered, and how other nodes are reached.
        broadcast_interval_s: how often diffs go to subscribers and changes to other nodes;
            a topic gets at most one diff per interval (Phoenix's ``broadcast_period``).
        heartbeat_interval_s: how often a node that has nothing to send says it is alive.
        down_period_s: a node not heard from for this long is taken for gone: its presences
            leave, with diffs. At least twice ``heartbeat_interval_s``.
        dispatcher: the PubSub dispatcher diffs are delivered with (see
            :meth:`PubSub.broadcast`); by default, into each subscriber's mailbox.

    Raises:
        TypeError: ``pubsub`` is not a PubSub.
        ValueError: an empty name, or intervals out of range (the message names the option).
    """

    def __init__(
        self,
        name: str,
        pubsub: PubSub,
        *,
        broadcast_interval_s: float = 1.5,
        heartbeat_interval_s: float = 15.0,
        down_period_s: float = 30.0,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Presence name must be a non-empty string, not {name!r}")
        if not isinstance(pubsub, PubSub):
            raise TypeError(f"Presence {name!r}: pubsub must be a PubSub, not {pubsub!r}")
        if not broadcast_interval_s > 0:
            raise ValueError(f"broadcast_interval_s must be > 0; got {broadcast_interval_s!r}")
        if not heartbeat_interval_s >= broadcast_interval_s:
            raise ValueError(
                f"heartbeat_interval_s must be >= broadcast_interval_s "
                f"({broadcast_interval_s!r}); got {heartbeat_interval_s!r}"
            )
        if not down_period_s >= 2 * heartbeat_interval_s:
            raise ValueError(
                f"down_period_s must be >= 2 * heartbeat_interval_s "
                f"({2 * heartbeat_interval_s!r}); got {down_period_s!r}"
            )
        self.name = name
        self.pubsub = pubsub
        self.broadcast_interval_s = broadcast_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.down_period_s = down_period_s
        self.dispatcher = dispatcher
        self._node_name = pubsub.node_name
        self._peer_topic = f"$presence:{name}"
        self._epoch = secrets.token_hex(8)
        self._ids = itertools.count(1)
        # Every node's entries, merged: topic -> key -> {entry id: meta}.
        self._topics: dict[str, dict[Hashable, dict[EntryId, Any]]] = {}
        # This node's: number -> row, and pid -> {(topic, key): number} for untrack/cleanup.
        self._local: dict[int, Row] = {}
        self._by_pid: dict[Pid, dict[tuple[str, Hashable], int]] = {}
        # Local changes not yet sent to other nodes, and the other nodes' state.
        self._seq = 0
        self._joins: dict[int, Row] = {}
        self._leaves: list[int] = []
        self._replicas: dict[str, _Replica] = {}
        self._requested_s: dict[str, float] = {}  # node -> when we last asked for its state
        # topic -> key -> its metas before its first change since the last diff.
        self._dirty: dict[str, dict[Hashable, Metas]] = {}
        self._server: Pid | None = None
        self._clock: Clock | None = None
        self._last_sent_s = 0.0
        self._greet = True  # ask the other nodes for their state at the next chance
        self._warned_s: float | None = None  # when we last logged a failed send
        self._on_exit = self._process_ended  # bound once, not per tracked process

    def __repr__(self) -> str:
        return (
            f"<Presence {self.name!r} on {self._node_name!r}, {len(self._topics)} topics, "
            f"{len(self._replicas)} other nodes>"
        )

    @property
    def node_name(self) -> str:
        """This node's name, as the PubSub's adapter knows it."""
        return self._node_name

    @property
    def pid(self) -> Pid | None:
        """The Presence process, or ``None`` when it is not running."""
        server = self._server
        return server if server is not None and server._alive else None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start_link(self) -> Pid:
        """Start the Presence process, linked to the caller; return its pid.

        Start the PubSub first, to meet the other nodes at once (otherwise at the first
        heartbeat after the PubSub starts). Tracked entries live in this object, not in the
        process: a restarted process carries on with them.

        Raises:
            AlreadyStarted: the process of this Presence is running.
        """
        return await self.start(link=True)

    async def start(self, *, link: bool = False) -> Pid:
        """:meth:`start_link`, without the link unless ``link`` is true."""
        running = self.pid
        if running is not None:
            raise AlreadyStarted(repr(self), self.name, running)
        return await _PresenceServer.start(self, link=link)

    def child_spec(self, id: Hashable = "presence") -> ChildSpec:
        """A :class:`~trunkline.otp.ChildSpec` that starts the process under a supervisor."""
        return ChildSpec(id, self.start_link)

    async def stop(self) -> None:
        """Stop the process; the other nodes are told and drop this node's presences.

        Local reads keep working, and diffs stop until it starts again.
        """
        server = self.pid
        if server is not None:
            await stop_server(server)

    # -- tracking: from any process, on behalf of any pid ------------------------------------------

    def track(self, pid: Pid, topic: str, key: Hashable, meta: Any = None) -> None:
        """Track ``pid`` on ``topic`` under ``key`` with ``meta``, until it ends or is untracked.

        A dead ``pid`` is not tracked, and no error is raised: it would have left at once,
        as in Phoenix, and the diff would net to nothing.

        ``key`` and ``meta`` go to other nodes as they are: keep them plain data that the
        PubSub's adapter can carry (and do not change ``meta`` afterwards; see :meth:`update`).

        Raises:
            TypeError: ``pid`` is not a Pid, ``topic`` not a string, ``key`` not hashable.
            ValueError: ``pid`` is already tracked on ``topic`` under ``key``.
        """
        slot = _slot(pid, topic, key)
        slots = self._by_pid.get(pid)
        if slots is None:
            if not add_exit_hook(pid, self, self._on_exit):
                return
            slots = self._by_pid[pid] = {}
        elif slot in slots:
            raise ValueError(
                f"{pid!r} is already tracked under {key!r} on {topic!r} in {self!r}; "
                "use update() to change its meta"
            )
        n = next(self._ids)
        slots[slot] = n
        self._local[n] = self._joins[n] = (topic, key, meta)
        self._put(topic, key, (self._node_name, n), meta)

    def untrack(self, pid: Pid, topic: str, key: Hashable) -> None:
        """Stop tracking ``pid`` on ``topic`` under ``key``; not tracked, do nothing.

        Raises:
            TypeError: as for :meth:`track`.
        """
        slot = _slot(pid, topic, key)
        slots = self._by_pid.get(pid)
        n = slots.pop(slot, None) if slots is not None else None
        if slots is None or n is None:
            return
        if not slots:
            del self._by_pid[pid]
            remove_exit_hook(pid, self)
        self._drop_local(n)

    def untrack_all(self, pid: Pid) -> None:
        """Stop tracking ``pid`` everywhere, as when it ends.

        Raises:
            TypeError: ``pid`` is not a Pid.
        """
        if type(pid) is not Pid:
            raise TypeError(f"presence: pid must be a Pid, not {pid!r}")
        if pid in self._by_pid:
            remove_exit_hook(pid, self)
            self._process_ended(pid, None)

    def update(self, pid: Pid, topic: str, key: Hashable, meta: Any) -> None:
        """Replace the meta of ``pid``'s tracking on ``topic`` under ``key``.

        Raises:
            TypeError: as for :meth:`track`.
            ValueError: ``pid`` is not tracked there (nothing changes).
        """
        slot = _slot(pid, topic, key)
        slots = self._by_pid.get(pid)
        n = slots.get(slot) if slots is not None else None
        if n is None:
            raise ValueError(f"{pid!r} is not tracked under {key!r} on {topic!r} in {self!r}")
        self._local[n] = self._joins[n] = (topic, key, meta)
        self._put(topic, key, (self._node_name, n), meta)

    # -- reading: no message to any process --------------------------------------------------------

    def list(self, topic: str) -> dict[Hashable, Metas]:
        """Who is on ``topic``, on every node: ``{key: [meta, ...]}``; a fresh dict."""
        keys = self._topics.get(topic)
        if not keys:
            return {}
        return {key: [*entries.values()] for key, entries in keys.items()}

    def get(self, topic: str, key: Hashable) -> Metas:
        """The metas of ``key`` on ``topic``, one per tracking, on every node; ``[]`` if none."""
        keys = self._topics.get(topic)
        entries = keys.get(key) if keys else None
        return [*entries.values()] if entries else []

    def keys(self, topic: str) -> builtins.list[Hashable]:
        """The keys present on ``topic``, on every node."""
        keys = self._topics.get(topic)
        return [*keys] if keys else []

    def key_count(self, topic: str) -> int:
        """How many keys are present on ``topic``, on every node."""
        keys = self._topics.get(topic)
        return len(keys) if keys else 0

    def nodes(self) -> builtins.list[str]:
        """The other nodes whose presences are merged here, sorted."""
        return sorted(self._replicas)

    # -- the merged view ---------------------------------------------------------------------------

    def _put(self, topic: str, key: Hashable, entry: EntryId, meta: Any) -> None:
        keys = self._topics.get(topic)
        if keys is None:
            keys = self._topics[topic] = {}
        entries = keys.get(key)
        self._touch(topic, key, entries)
        if entries is None:
            keys[key] = {entry: meta}
        else:
            entries[entry] = meta

    def _pop(self, topic: str, key: Hashable, entry: EntryId) -> None:
        keys = self._topics.get(topic)
        entries = keys.get(key) if keys is not None else None
        if keys is None or entries is None or entry not in entries:
            return
        self._touch(topic, key, entries)
        del entries[entry]
        if not entries:
            del keys[key]
            if not keys:
                del self._topics[topic]

    def _touch(self, topic: str, key: Hashable, entries: dict[EntryId, Any] | None) -> None:
        # Remember the key as it was before its first change in this interval: the diff is
        # the difference between that and how it is when the interval ends.
        dirty = self._dirty.get(topic)
        if dirty is None:
            self._dirty[topic] = {key: [*entries.values()] if entries else []}
        elif key not in dirty:
            dirty[key] = [*entries.values()] if entries else []

    def _drop_local(self, n: int) -> None:
        topic, key, _ = self._local.pop(n)
        self._joins.pop(n, None)
        self._leaves.append(n)
        self._pop(topic, key, (self._node_name, n))

    def _process_ended(self, pid: Pid, reason: Any) -> None:
        slots = self._by_pid.pop(pid, None)
        if slots is not None:
            for n in slots.values():
                self._drop_local(n)

    # -- run by the Presence process ---------------------------------------------------------------

    def _started(self, server: Pid) -> None:
        self._server = server
        self._clock = current_node().clock
        self._last_sent_s = self._clock.monotonic()
        self._greet = not self._send(None, self._hello())

    def _stopping(self, reason: Any) -> None:
        if is_normal_exit(reason):
            self._send(None, _Goodbye(self._node_name, self._epoch))
        self._greet = True

    def _tick(self) -> None:
        """Send changes or a heartbeat, forget silent nodes, and deliver the diffs."""
        assert self._clock is not None
        now = self._clock.monotonic()
        if self._joins or self._leaves:
            self._seq += 1
            delta = _Delta(self._node_name, self._epoch, self._seq, self._joins, (*self._leaves,))
            self._joins, self._leaves = {}, []
            self._send(None, delta)  # if lost, the others see the gap in seq and ask for all
            self._last_sent_s = now
        if self._greet:
            self._greet = not self._send(None, self._hello())
            self._last_sent_s = now
        # Ticks may land a hair early on a float clock: allow half an interval.
        elif now - self._last_sent_s >= self.heartbeat_interval_s - self.broadcast_interval_s / 2:
            self._send(None, _Heartbeat(self._node_name, self._epoch, self._seq))
            self._last_sent_s = now
        for node, replica in [*self._replicas.items()]:
            if now - replica.heard_s > self.down_period_s:
                log.warning(
                    "%r: node %r not heard from for %.1f s: its presences leave",
                    self,
                    node,
                    now - replica.heard_s,
                )
                self._drop_replica(node)
        self._flush()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        pubsub = self.pubsub
        for topic, before_by_key in dirty.items():
            if not pubsub.subscriber_count(topic):
                continue
            keys = self._topics.get(topic) or {}
            joins: dict[Hashable, Metas] = {}
            leaves: dict[Hashable, Metas] = {}
            for key, before in before_by_key.items():
                entries = keys.get(key)
                if not entries:
                    if before:
                        leaves[key] = before
                    continue
                after = [*entries.values()]
                if not _same_metas(before, after):
                    joins[key] = after
            if joins or leaves:
                # Each node computes its own subscribers' diffs from everything it learns, so
                # diffs stay on this node: one object for all of its subscribers.
                diff = PresenceDiff(topic, joins, leaves)
                try:
                    pubsub.local_broadcast(topic, diff, dispatcher=self.dispatcher)
                except Exception:
                    # The dispatcher is the caller's code: one topic's failure must not
                    # lose the other topics' diffs (nor restart this process).
                    log.exception("%r: delivering the diff of %r failed", self, topic)

    def _receive(self, message: Any) -> None:
        """Apply a message from the Presence of the same name on another node."""
        node = message.node
        if node == self._node_name:
            return
        assert self._clock is not None
        now = self._clock.monotonic()
        match message:
            case _Delta(_, epoch, seq, joins, leaves):
                replica = self._replicas.get(node)
                if replica is None or replica.epoch != epoch or seq != replica.seq + 1:
                    self._heard(node, epoch, seq, now)  # a gap: ask for the whole state
                    return
                replica.seq, replica.heard_s = seq, now
                self._apply(node, replica.entries, joins, leaves)
            case _Heartbeat(_, epoch, seq):
                self._heard(node, epoch, seq, now)
            case _StateRequest(_, epoch, seq):
                self._heard(node, epoch, seq, now)
                state = _State(self._node_name, self._epoch, self._seq, dict(self._local))
                self._send(node, state)
            case _State(_, epoch, seq, entries):
                replica = self._replicas.get(node)
                self._requested_s.pop(node, None)
                if replica is not None and replica.epoch == epoch and seq < replica.seq:
                    replica.heard_s = now  # older than what we have
                    return
                self._replace(node, _Replica(epoch, seq, dict(entries), now))
            case _Goodbye(_, epoch):
                replica = self._replicas.get(node)
                if replica is not None and replica.epoch == epoch:
                    self._drop_replica(node)

    def _heard(self, node: str, epoch: str, seq: int, now: float) -> None:
        replica = self._replicas.get(node)
        if replica is not None and replica.epoch == epoch:
            replica.heard_s = now
            if seq <= replica.seq:
                return
        elif seq == 0:
            # A node that has sent no change yet: its state is empty, no need to ask.
            self._replace(node, _Replica(epoch, 0, {}, now))
            return
        asked_s = self._requested_s.get(node)
        if asked_s is None or now - asked_s >= self.broadcast_interval_s:
            self._requested_s[node] = now
            self._send(node, self._hello())

    def _apply(
        self, node: str, entries: dict[int, Row], joins: Mapping[int, Row], leaves: Iterable[int]
    ) -> None:
        for n in leaves:
            row = entries.pop(n, None)
            if row is not None:
                self._pop(row[0], row[1], (node, n))
        for n, row in joins.items():
            entries[n] = row
            self._put(row[0], row[1], (node, n), row[2])

    def _replace(self, node: str, replica: _Replica) -> None:
        old = self._replicas.get(node)
        new = replica.entries
        if old is not None:
            for n, row in old.entries.items():
                if new.get(n) != row:
                    self._pop(row[0], row[1], (node, n))
        for n, row in new.items():
            if old is None or old.entries.get(n) != row:
                self._put(row[0], row[1], (node, n), row[2])
        self._replicas[node] = replica

    def _drop_replica(self, node: str) -> None:
        replica = self._replicas.pop(node)
        self._requested_s.pop(node, None)
        for n, row in replica.entries.items():
            self._pop(row[0], row[1], (node, n))

    def _hello(self) -> _StateRequest:
        return _StateRequest(self._node_name, self._epoch, self._seq)

    def _send(self, node: str | None, message: Any) -> bool:
        """To every other node (``None``) or one; ``False`` if the adapter refused it."""
        try:
            if node is None:
                assert self._server is not None
                self.pubsub.broadcast_from(self._server, self._peer_topic, message)
            else:
                self.pubsub.direct_broadcast(node, self._peer_topic, message)
        except BroadcastError as e:
            # Best effort, as PubSub is: the others resync from the seq of our next message.
            now = self._clock.monotonic() if self._clock is not None else 0.0
            if self._warned_s is None or now - self._warned_s >= self.down_period_s:
                log.warning("%r cannot send %s: %s", self, type(message).__name__[1:], e)
                self._warned_s = now
            if node is None:
                self._greet = True  # cut off, perhaps: ask for everyone's state when back
            return False
        return True


class _PresenceServer(GenServer):
    """The Presence process: ticks, and messages from the other nodes."""

    trap_exit = True  # so that a supervisor's shutdown runs terminate, which says goodbye
    presence: Presence

    def init(self, presence: Presence) -> None:
        running = presence.pid
        if running is not None:
            raise AlreadyStarted(repr(presence), presence.name, running)
        self.presence = presence
        presence.pubsub.subscribe(presence._peer_topic)
        send_interval(presence.broadcast_interval_s, self.pid, _TICK)
        presence._started(self.pid)

    def handle_info(self, message: Any) -> None:
        if message is _TICK:
            self.presence._tick()
        elif type(message) in _PEER_MESSAGES:
            self.presence._receive(message)
        elif type(message) is not Exit:  # a linked process ended: not ours to act on
            super().handle_info(message)

    def terminate(self, reason: Any) -> None:
        self.presence._stopping(reason)


def _slot(pid: Pid, topic: str, key: Hashable) -> tuple[str, Hashable]:
    if type(pid) is not Pid:
        raise TypeError(f"presence: pid must be a Pid, not {pid!r}")
    if type(topic) is not str:
        raise TypeError(f"presence: topic must be a string, not {topic!r}")
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"presence: key must be hashable, not {key!r}") from None
    return topic, key


def _same_metas(before: Metas, after: Metas) -> bool:
    """Whether two lists hold the same metas, in any order (metas need not be hashable)."""
    if len(before) != len(after):
        return False
    rest = [*after]
    for meta in before:
        try:
            rest.remove(meta)
        except ValueError:
            return False
    return True
