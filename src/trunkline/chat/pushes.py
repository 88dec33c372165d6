"""What rooms push to connections, and how it reaches their sockets.

A room process broadcasts a :class:`RoomPush` on PubSub ``room:<id>`` with :func:`dispatch`
as the dispatcher. A connection that joined the room subscribed with a :class:`Lane` as its
subscription's metadata, and :func:`dispatch` hands the push straight to the lane, which
writes it to the connection's :class:`Transport` - without a message to the connection
process, without waking it. That is the hot path of the chat server: a message for a room of
1,000 members is 1,000 writes of the same bytes, not 1,000 process wake-ups (Phoenix calls
this the fastlane). Subscribers without a lane (any other process) get the push in their
mailbox, as with any broadcast.

A lane keeps what the connection process used to: the highest message ``seq`` written for the
room, so a push at or below it (replayed already, or broadcast twice) is dropped. While the
connection replays a room's history on ``join ... since``, its lane *holds* pushes instead of
writing them; the connection then calls :meth:`Lane.open`, which writes what was held after
the replay, in order and without duplicates, and from then on writes as pushes arrive. All of
that runs on the event loop's one thread with no ``await`` in between, so no push can slip
between the replay and the lane opening.

The room's presence diffs (``presence.py``) come the same way: the tree's Presence delivers
each :class:`~trunkline.otp.PresenceDiff` with :func:`dispatch`, which encodes it once as a
``presence`` push for every lane.

A member removed from a room (kicked, banned, gone) is sent a :class:`MemberRemoved` on the
room's topic: the dispatcher removes that user's lanes at once - each writes a ``removed``
push and nothing more, and tells its connection, which unsubscribes at its next frame.

Pushes to a *user* rather than a room - "your rooms changed", in-app notifications - go by
:func:`push_to_user`: the tree keeps the transports of each user's authenticated connections
(``tree.sockets``), so such a push is one write per socket, with no subscription kept per
connection for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from trunkline import otp

from .presence import encode_diff
from .protocol import encode

if TYPE_CHECKING:
    from .tree import ChatTree

__all__ = [
    "Lane",
    "MemberRemoved",
    "RoomPush",
    "Transport",
    "UserSockets",
    "dispatch",
    "push_to_user",
]


class Transport(Protocol):
    """Where a connection writes: a socket's adapter, or a ``MemoryTransport``."""

    def send(self, text: str) -> bool:
        """Queue a frame without waiting; false when the client is too slow (over its
        outbound cap) and is being disconnected, or is gone."""
        ...

    def send_push(self, push: RoomPush) -> bool:
        """:meth:`send` a room's push, whose frame is shared by every connection it goes
        to: what the transport makes of ``push.frame`` it may keep in ``push.wire`` for the
        next transport, so a frame is encoded once per message, not once per recipient."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection after the frames queued (without waiting)."""
        ...


@dataclass(slots=True, eq=False)
class RoomPush:
    """What a room broadcasts on ``room:<id>``: ``kind`` (``"message"``, ``"edit"``,
    ``"delete"``, ``"typing"``), the message's ``seq`` (0 for typing) and the frame, encoded
    once, that every connection writes as it is.

    ``wire`` is the frame as bytes on the wire, set by the first transport that writes it
    (see :meth:`Transport.send_push`); it is not part of what the push says.
    """

    room_id: int
    kind: str
    seq: int
    frame: str
    wire: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    """Broadcast on a room's topic when ``user_id`` stops being one of its members: ``reason``
    is ``"left"``, ``"kicked"`` or ``"banned"``."""

    room_id: int
    user_id: int
    reason: str


class Lane:
    """A connection's subscription to one room (the PubSub metadata); see the module.

    Args:
        transport: the connection's transport.
        user_id: the connection's user.
        last_seq: message pushes at or below this ``seq`` are dropped.
        room_id: the room.
        holding: hold pushes until :meth:`open` (a join replaying history) rather than
            write them at once.
        on_removed: called with the lane when :meth:`remove` closes it.
    """

    __slots__ = ("closed", "held", "last_seq", "on_removed", "room_id", "transport", "user_id")

    def __init__(
        self,
        transport: Transport,
        user_id: int,
        last_seq: int = 0,
        *,
        room_id: int = 0,
        holding: bool = False,
        on_removed: Callable[[Lane], object] | None = None,
    ) -> None:
        self.transport = transport
        self.user_id = user_id
        self.last_seq = last_seq
        self.room_id = room_id
        self.held: list[RoomPush] | None = [] if holding else None
        self.on_removed = on_removed
        self.closed = False

    def remove(self, reason: str) -> None:
        """The user is no longer a member (``reason``): write nothing more but a
        ``removed`` push saying so."""
        if self.closed:
            return
        self.closed = True
        self.transport.send(encode({"type": "removed", "room": self.room_id, "reason": reason}))
        if self.on_removed is not None:
            self.on_removed(self)

    def push(self, push: RoomPush) -> None:
        """Write ``push`` (or hold it, or drop it: see the module)."""
        if self.closed:
            return
        if self.held is not None:
            self.held.append(push)
            return
        if push.kind == "message":
            if push.seq <= self.last_seq:
                return
            self.last_seq = push.seq
        self.transport.send_push(push)

    def open(self, last_seq: int) -> None:
        """The replay sent messages up to ``last_seq``: write what was held after it, then
        write pushes as they come."""
        held, self.held = self.held, None
        self.last_seq = max(self.last_seq, last_seq)
        for push in held or ():
            self.push(push)


def dispatch(
    subscribers: Sequence[tuple[otp.Pid, Any]], from_pid: otp.Pid | None, message: Any
) -> None:
    """The PubSub dispatcher of room topics: a :class:`RoomPush` goes to each subscriber's
    :class:`Lane` (or mailbox, if it has none); a :class:`MemberRemoved` removes the user's
    lanes (:meth:`Lane.remove`), and goes to the mailboxes of subscribers without a lane.
    ``from_pid`` (a typing user's connection) is skipped. A
    :class:`~trunkline.otp.PresenceDiff` of a room is encoded once and goes as a push."""
    if type(message) is otp.PresenceDiff and message.topic.startswith("room:"):
        room_id = int(message.topic.removeprefix("room:"))
        now = otp.current_node().clock.now()
        frame = encode_diff(room_id, message.joins, message.leaves, now)
        message = RoomPush(room_id, "presence", 0, frame)
    if type(message) is RoomPush:
        for pid, lane in subscribers:
            if pid is from_pid:
                continue
            if type(lane) is Lane:
                lane.push(message)
            else:
                otp.send(pid, message)
        return
    removed = type(message) is MemberRemoved
    for pid, lane in subscribers:
        if pid is from_pid:
            continue
        if type(lane) is not Lane:
            otp.send(pid, message)
        elif removed and lane.user_id == message.user_id:
            lane.remove(message.reason)


class UserSockets:
    """The transports of the authenticated connections on this node, by user: what
    :func:`push_to_user` writes to. A user with one connection costs one dict entry (no list),
    as most have one: this is per-connection memory."""

    __slots__ = ("_by_user",)

    def __init__(self) -> None:
        self._by_user: dict[int, Transport | list[Transport]] = {}

    def add(self, user_id: int, transport: Transport) -> None:
        held = self._by_user.get(user_id)
        if held is None:
            self._by_user[user_id] = transport
        elif type(held) is list:
            held.append(transport)
        else:
            self._by_user[user_id] = [held, transport]  # type: ignore[list-item]

    def remove(self, user_id: int, transport: Transport) -> None:
        held = self._by_user.get(user_id)
        if held is transport:
            del self._by_user[user_id]
        elif type(held) is list:
            # By identity: transports may compare equal (MemoryTransport is a dataclass).
            kept = [t for t in held if t is not transport]
            if not kept:
                del self._by_user[user_id]
            else:
                self._by_user[user_id] = kept[0] if len(kept) == 1 else kept

    def of(self, user_id: int) -> list[Transport]:
        """The user's transports (a new list)."""
        held = self._by_user.get(user_id)
        if held is None:
            return []
        return list(held) if type(held) is list else [held]  # type: ignore[list-item]

    def __len__(self) -> int:
        return len(self._by_user)


def push_to_user(tree: ChatTree, user_id: int, frame: dict[str, Any]) -> int:
    """Write the push ``frame`` (a JSON object with a ``"type"``) to every socket of
    ``user_id`` on this node that has authenticated; how many got it. Sockets on other nodes
    do not, yet: a client that must not miss the news also reads it over HTTP."""
    transports = tree.sockets.of(user_id)
    if not transports:
        return 0
    text = encode(frame)
    return sum(transport.send(text) for transport in transports)
