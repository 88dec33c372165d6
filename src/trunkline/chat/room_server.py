"""A room's process: the one writer of a room's messages on this node.

One :class:`RoomServer` runs per active room, started on demand by :func:`room` under the
chat tree's room supervisor and found through its registry (``Via(tree.rooms, room_id)``).
It starts by reading the room's last sequence number from the database, so a room process
that died is replaced by a fresh one that carries on where the database says.

It serializes the room's writes. A send is::

    send(tree, room_id, user, body, client_msg_id)
        -> the room process hands it to the node's message writer and takes its next
           request: the writer stores it, in a batch with the other sends of this room and
           of others (checks membership and mute, numbers; message_writer.py)
        -> once stored, the reply to the caller, with the stored message: the
           acknowledgement
        -> one broadcast on PubSub "room:<id>", its frame encoded once for every recipient
           and written by the dispatcher straight to each joined connection's socket
           (``pushes.py``), in the order of the messages' numbers

Edits and deletions are done by the process itself, one at a time (their pushes keep the
message's ``seq`` with a new ``version``). Because the reply comes only after the store, an
acknowledged message is never lost. A send the process handed over is answered and broadcast
once stored even if the process was killed meanwhile; a caller whose room process died
before taking its request, or that did not hear back in time, gets :class:`RoomUnavailable`
and may send again with the same ``client_msg_id``: the message is stored at most once, and
the next call starts a new process.

A room process with no request and no subscriber on its topic for ``limits.room_idle_s``
(node clock) stops, normally; the next request starts another.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from trunkline import db, otp

from .exceptions import ChatError
from .messages import Message, delete_message, edit_message
from .offline import notify_offline, wanted
from .protocol import encode_push
from .pushes import MemberRemoved, RoomPush, dispatch
from .tree import ChatTree, room_topic

__all__ = [
    "RoomPush",
    "RoomServer",
    "RoomUnavailable",
    "delete",
    "edit",
    "member_removed",
    "room",
    "room_info",
    "send",
]

log = logging.getLogger("trunkline.chat")

# A room process that is gone before a request reaches it (idle stop, a kill) is looked up and
# started again this many times before the caller is told.
_LOOKUPS = 3

_IDLE = "idle_check"

_KIND = db.Query("chat.room.kind", "SELECT kind FROM chat_rooms WHERE id = $1")
_LAST_SEQ = db.Query(
    "chat.room.last_seq", "SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE room_id = $1"
)


class RoomUnavailable(ChatError):
    """The room's process ended before replying (killed, or stopping with its node), did not
    reply within ``limits.request_timeout_s``, or could not store a send (the database
    failed): the request may or may not have been done.
    A send may be retried with the same ``client_msg_id`` (it is stored at most once).

    Attributes:
        room_id: the room.
        reason: the process's exit reason, ``"timeout"``, or (``storing``) what the store
            failed with.
    """

    def __init__(self, room_id: int, reason: Any, *, storing: bool = False) -> None:
        if reason == "timeout":
            text = f"room {room_id}: its process did not reply in time"
        elif storing:
            text = f"room {room_id}: the message could not be stored ({reason!r})"
        else:
            text = f"room {room_id}: its process ended before replying ({reason!r})"
        super().__init__(text)
        self.room_id = room_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Failed:
    error: ChatError


class RoomServer(otp.GenServer):
    """The process of one room; see the module documentation. Start it with :func:`room`."""

    def init(self, arg: tuple[ChatTree, int]) -> otp.Continue:
        self.tree, self.room_id = arg
        self.topic = room_topic(self.room_id)
        self.last_seq = 0
        self.direct = False
        self.broadcast_upto = 0  # the highest seq this process has broadcast
        self.clock = otp.current_node().clock
        self.active_at = self.clock.monotonic()
        otp.send_after(self.tree.limits.room_idle_s, otp.self(), _IDLE)
        # Restored after init returns, so that a slow database does not hold the supervisor;
        # requests wait in the mailbox meanwhile.
        return otp.Continue("restore")

    async def handle_continue(self, term: Any) -> None:
        database = self.tree.require_database()
        self.last_seq = self.broadcast_upto = await database.fetch_val(_LAST_SEQ, self.room_id)
        self.direct = await database.fetch_val(_KIND, self.room_id) == "direct"

    async def handle_call(self, request: Any, from_: otp.From) -> Any:
        self.active_at = self.clock.monotonic()
        database = self.tree.require_database()
        try:
            match request:
                case ("send", user_id, body, client_msg_id, origin):
                    # Handed over, not awaited: the room takes its next request while this
                    # one is stored, so that the sends of a busy room share the writer's
                    # batches. _stored answers it.
                    stored = self.tree.message_writer.store(
                        database, self.room_id, user_id, body, client_msg_id
                    )
                    stored.add_done_callback(partial(self._stored, from_, origin))
                    return otp.NoReply()
                case ("edit", user_id, seq, body, origin):
                    message = await edit_message(database, self.room_id, seq, user_id, body)
                    otp.reply(from_, message)
                    self._broadcast("edit", message, origin)
                    return otp.NoReply()
                case ("delete", user_id, seq, origin):
                    message = await delete_message(database, self.room_id, seq, user_id)
                    otp.reply(from_, message)
                    self._broadcast("delete", message, origin)
                    return otp.NoReply()
                case "info":
                    return {"room_id": self.room_id, "last_seq": self.last_seq}
        except ChatError as error:
            return _Failed(error)
        raise ValueError(f"room {self.room_id}: unknown request {request!r}")

    def handle_info(self, message: Any) -> Any:
        if message == _IDLE:
            idle_s = self.tree.limits.room_idle_s
            quiet_s = self.clock.monotonic() - self.active_at
            if quiet_s >= idle_s and self.tree.pubsub.subscriber_count(self.topic) == 0:
                return otp.Stop(otp.NORMAL)
            otp.send_after(max(idle_s - quiet_s, 0.0) or idle_s, otp.self(), _IDLE)
        return None

    def _stored(
        self, from_: otp.From, origin: otp.Pid | None, stored: asyncio.Future[Message]
    ) -> None:
        """A send is stored, or refused: acknowledge it, then broadcast it. The writer's
        futures are done in the order their messages were stored, so broadcasts go out in
        the order of their numbers. This runs whether or not the process still does: what
        a process killed in the middle stored is still answered and broadcast."""
        if stored.cancelled():
            otp.reply(from_, _Failed(RoomUnavailable(self.room_id, "cancelled", storing=True)))
            return
        error = stored.exception()
        if error is not None:
            if not isinstance(error, ChatError):
                log.warning("room %d: a send failed: %r", self.room_id, error)
                error = RoomUnavailable(self.room_id, error, storing=True)
            otp.reply(from_, _Failed(error))
            return
        message = stored.result()
        otp.reply(from_, message)  # the acknowledgement: stored
        if not message.duplicate or message.seq > self.broadcast_upto:
            # A duplicate is broadcast again only if this process has not yet broadcast
            # that far: its predecessor may have died before doing so.
            self.last_seq = max(self.last_seq, message.seq)
            self._broadcast("message", message, origin)
        if (
            not message.duplicate
            and (self.direct or "@" in message.body)  # else it is for nobody
            and wanted(self.tree)
        ):
            # For members with no device connected: after the ack, beside the room, so
            # that neither waits for it.
            otp.spawn(notify_offline, self.tree, message, self.direct)

    def _broadcast(self, kind: str, message: Message, origin: otp.Pid | None) -> None:
        self.broadcast_upto = max(self.broadcast_upto, message.seq)
        frame = encode_push(kind, message, self.clock.now())
        push = RoomPush(self.room_id, kind, message.seq, frame)
        if origin is None:
            self.tree.pubsub.broadcast(self.topic, push, dispatcher=dispatch)
        else:
            # The connection that asked has the message in its reply already.
            self.tree.pubsub.broadcast_from(origin, self.topic, push, dispatcher=dispatch)


async def room(tree: ChatTree, room_id: int) -> otp.Pid:
    """The room's process: the running one, or one started now (concurrent callers get the
    same one).

    Raises:
        RuntimeError: the tree is not started.
    """
    found = tree.rooms.whereis_name(room_id)
    if found is not None:
        return found
    supervisor = tree.room_supervisor
    if supervisor is None:
        raise RuntimeError("the chat tree is not started")

    async def start() -> otp.Pid:
        pid: otp.Pid = await RoomServer.start_link(
            (tree, room_id), name=otp.Via(tree.rooms, room_id)
        )
        return pid

    spec = otp.ChildSpec(("room", room_id), start, restart="temporary")
    try:
        pid = await otp.start_child(supervisor, spec)
    except otp.AlreadyStarted as error:
        started: otp.Pid = error.pid  # another caller started it first
        return started
    assert pid is not None
    return pid


async def send(
    tree: ChatTree,
    room_id: int,
    user_id: int,
    body: str,
    client_msg_id: str,
    *,
    origin: otp.Pid | None = None,
) -> Message:
    """Store a message through the room's process and broadcast it; the stored message (the
    acknowledgement). See :func:`~trunkline.chat.messages.append` for the checks.
    ``origin``, the connection that sent it, is left out of the broadcast: the message is in
    its reply.

    Raises:
        RoomUnavailable: the room's process died before replying: retry with the same
            ``client_msg_id``.
        InvalidInput, NotFound, NotMember, Muted: as ``append``; nothing was stored.
    """
    message: Message = await _request(tree, room_id, ("send", user_id, body, client_msg_id, origin))
    return message


async def edit(
    tree: ChatTree,
    room_id: int,
    user_id: int,
    seq: int,
    body: str,
    *,
    origin: otp.Pid | None = None,
) -> Message:
    """Edit a message through the room's process and broadcast the new version (``origin``
    left out, as in :func:`send`).

    Raises:
        RoomUnavailable: as :func:`send`.
        InvalidInput, NotFound, NotMember, Muted, Forbidden: as ``edit_message``.
    """
    message: Message = await _request(tree, room_id, ("edit", user_id, seq, body, origin))
    return message


async def delete(
    tree: ChatTree, room_id: int, user_id: int, seq: int, *, origin: otp.Pid | None = None
) -> Message:
    """Delete a message through the room's process and broadcast the tombstone (``origin``
    left out, as in :func:`send`).

    Raises:
        RoomUnavailable: as :func:`send`.
        NotFound, NotMember, Forbidden: as ``delete_message``.
    """
    message: Message = await _request(tree, room_id, ("delete", user_id, seq, origin))
    return message


def member_removed(tree: ChatTree, room_id: int, user_id: int, reason: str) -> None:
    """Tell the room's subscribers that ``user_id`` is no longer a member (``reason``:
    ``"left"``, ``"kicked"``, ``"banned"``): that user's connections stop receiving the room
    at once and tell their clients. Call it after the change is stored."""
    tree.pubsub.broadcast(
        room_topic(room_id), MemberRemoved(room_id, user_id, reason), dispatcher=dispatch
    )


async def room_info(tree: ChatTree, room_id: int) -> dict[str, Any]:
    """The room process's state: ``room_id``, ``last_seq`` (starting it if needed)."""
    info: dict[str, Any] = await _request(tree, room_id, "info")
    return info


async def _request(tree: ChatTree, room_id: int, request: Any) -> Any:
    for attempt in range(_LOOKUPS):
        pid = await room(tree, room_id)
        try:
            result = await otp.call(pid, request, timeout=tree.limits.request_timeout_s)
        except otp.CallError as error:
            # Gone before taking the request (no such process, or stopped idle between two
            # requests): nothing was done, ask its successor. Killed while handling it, or
            # too slow (timeout): the caller decides.
            if error.reason in (otp.NOPROC, otp.NORMAL) and attempt < _LOOKUPS - 1:
                continue
            raise RoomUnavailable(room_id, error.reason) from None
        if isinstance(result, _Failed):
            raise result.error
        return result
    raise AssertionError("unreachable")
