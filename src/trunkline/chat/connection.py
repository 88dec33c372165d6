"""A client's connection: protocol v1 between one socket and the rooms.

A :class:`Connection` is run by one process, the connection's. It knows nothing of sockets:
it is given a :class:`Transport` to write frames to and to close, and each text frame the
client sends, through :meth:`Connection.handle_frame`, one at a time.

- A socket adapter whose reading task is a process runs it there: the WebSocket handler
  (``trunkline.web.chat_socket``) makes the task that reads the socket the connection's
  process (``otp.self()`` adopts it), so a connection costs no task, mailbox or call of its
  own - it ends when the socket does.
- Otherwise, :func:`start_connection` starts a :class:`ConnectionServer` (a GenServer
  holding the connection) under the chat tree's connection supervisor, and
  :func:`handle_frame` hands it frames. With a :class:`MemoryTransport`, which records the
  frames, that is how tests drive the protocol.

For each frame, in order: the size limit (``too_large``), the token bucket
(``rate_limited``), parsing (:mod:`~trunkline.chat.protocol`), authentication (only ``auth``
and ``ping`` before it), then the operation. Every failure is answered with an error frame
and the connection goes on; nothing a client sends ends the process.

**Pushes skip the process.** ``join`` subscribes to the room's topic with a
:class:`~trunkline.chat.pushes.Lane`: the room's pushes are written straight to the transport
by the broadcast itself, not sent to this process (see ``pushes.py``). A member removed from
the room (kicked, banned, left from another device) has its lanes closed, and is told with a
``removed`` push, by the broadcast that says so; the connection unsubscribes at its next frame.

**Join and replay without a race.** ``join ... since`` subscribes *first*, with a lane that
holds pushes, then replays from the database what came after ``since``, then opens the lane:
what was held is written after the replay, without what the replay already sent. So a client
gets every message once, in order, whatever was being sent while it joined.

**Slow clients.** Frames are handed to the transport without waiting; the transport holds at
most ``max_outbound_bytes`` of them and disconnects a client that lets more pile up.

**Presence.** An authenticated connection tracks its process in the tree's Presence under
its user id, and in each room it joins (``presence.py``); the ``join`` reply carries the
room's presence, and diffs follow as ``presence`` pushes. The entries go when the process
ends; :meth:`Connection.ended` records the device as last seen.

**Idle connections.** A connection with no frame for ``limits.idle_timeout_s`` is closed with
:data:`CLOSE_IDLE`: the socket adapter reads with that timeout; a ``ConnectionServer`` checks
with a timer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from trunkline import otp

from . import room_server
from .accounts import authenticate, seen
from .exceptions import (
    Banned,
    ChatError,
    Forbidden,
    InvalidInput,
    InvalidToken,
    Muted,
    NotFound,
    NotMember,
)
from .history import MAX_HISTORY_LIMIT, since
from .presence import room_presence, track_room, track_user, untrack_room
from .protocol import (
    PROTOCOL_VERSION,
    Auth,
    Delete,
    Edit,
    FrameError,
    Join,
    Leave,
    Ping,
    Read,
    Request,
    Send,
    Typing,
    encode,
    encode_message_reply,
    encode_push,
    encode_reply,
    parse_request,
)
from .pushes import Lane, RoomPush, Transport, dispatch
from .read_markers import mark_read
from .room_server import RoomUnavailable
from .rooms import require_member
from .tree import ChatTree, room_topic

__all__ = [
    "CLOSE_IDLE",
    "CLOSE_REVOKED",
    "Connection",
    "ConnectionServer",
    "MemoryTransport",
    "Transport",
    "handle_frame",
    "start_connection",
]

log = logging.getLogger("trunkline.chat")

CLOSE_IDLE = 1001
"""The close code of a connection that sent nothing for ``idle_timeout_s`` (going away)."""
CLOSE_REVOKED = 4401
"""The close code of a connection whose device was logged out or revoked: log in again."""

_IDLE = "idle_check"
# A send whose room process died mid-request is retried (same client_msg_id: stored once).
_SEND_ATTEMPTS = 3


@dataclass
class MemoryTransport:
    """A transport that keeps the frames (as text) and the close, for tests."""

    frames: list[str] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def send(self, text: str) -> bool:
        if self.closed is None:
            self.frames.append(text)
        return self.closed is None

    def send_push(self, push: RoomPush) -> bool:
        return self.send(push.frame)

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)


async def start_connection(tree: ChatTree, transport: Transport) -> otp.Pid:
    """Start a :class:`ConnectionServer` for ``transport`` under the tree's connection
    supervisor; hand it frames with :func:`handle_frame`."""
    supervisor = tree.connection_supervisor
    if supervisor is None:
        raise RuntimeError("the chat tree is not started")

    async def start() -> otp.Pid:
        pid: otp.Pid = await ConnectionServer.start_link((tree, transport))
        return pid

    pid = await otp.start_child(
        supervisor, otp.ChildSpec("connection", start, restart="temporary", shutdown=1.0)
    )
    assert pid is not None
    return pid


async def handle_frame(connection: otp.Pid, text: str | None) -> None:
    """Hand a client's frame to a :class:`ConnectionServer` (``None``: a binary frame) and
    wait until it is handled: the adapter reads the next frame only then, so a client that
    sends faster than it is served is slowed down by TCP, not buffered.

    Raises:
        CallError: the connection process is gone.
    """
    await otp.call(connection, ("frame", text), timeout=None)


class ConnectionServer(otp.GenServer):
    """A process holding a :class:`Connection`, for transports without a process of their
    own; see the module documentation. Calls: ``("frame", text)``, ``"state"``."""

    def init(self, arg: tuple[ChatTree, Transport]) -> None:
        self.connection = Connection(*arg)
        otp.send_after(self.connection.limits.idle_timeout_s, otp.self(), _IDLE)

    async def handle_call(self, request: Any, from_: otp.From) -> Any:
        match request:
            case ("frame", text):
                await self.connection.handle_frame(text)
                return None
            case "state":
                return self.connection.state()
        raise ValueError(f"connection: unknown request {request!r}")

    def handle_info(self, message: Any) -> Any:
        if message == _IDLE:
            connection = self.connection
            quiet_s = connection.quiet_s()
            if quiet_s >= connection.limits.idle_timeout_s:
                connection.transport.close(CLOSE_IDLE, "idle timeout")
                return otp.Stop(otp.NORMAL)
            otp.send_after(connection.limits.idle_timeout_s - quiet_s, otp.self(), _IDLE)
        return None

    async def terminate(self, reason: Any) -> None:
        await self.connection.ended()


class Connection:
    """One client's connection; see the module documentation. Make it in the process that
    will run it (it subscribes and tracks that process), and give that process its frames.

    Args:
        tree: the chat tree.
        transport: where the connection writes.
    """

    __slots__ = (
        "bucket_at",
        "clock",
        "device_id",
        "joined",
        "last_frame_at",
        "limits",
        "pid",
        "stale",
        "tokens",
        "transport",
        "tree",
        "typing_at",
        "user_id",
    )

    def __init__(self, tree: ChatTree, transport: Transport) -> None:
        self.tree = tree
        self.transport = transport
        self.limits = tree.limits
        self.clock = otp.current_node().clock
        self.pid = otp.self()
        self.user_id: int | None = None
        self.device_id: int | None = None
        # room id -> the lane of its pushes (pushes.py).
        self.joined: dict[int, Lane] = {}
        self.typing_at: dict[int, float] | None = None  # made at the first typing notice
        # Rooms whose lane was removed (the user is no member any more): to unsubscribe from.
        self.stale: list[int] | None = None
        self.last_frame_at = self.bucket_at = self.clock.monotonic()
        self.tokens = float(self.limits.rate_burst)

    def state(self) -> dict[str, Any]:
        """``user_id`` and ``joined`` (room id -> the last message ``seq`` written)."""
        joined = {room_id: lane.last_seq for room_id, lane in self.joined.items()}
        return {"user_id": self.user_id, "joined": joined}

    def quiet_s(self) -> float:
        """Seconds since the client's last frame."""
        return self.clock.monotonic() - self.last_frame_at

    async def ended(self) -> None:
        """The client is gone: record its device as last seen now."""
        if self.device_id is None:
            return
        assert self.user_id is not None
        self.tree.sockets.remove(self.user_id, self.transport)
        try:
            await seen(self.tree.require_database(), self.device_id)
        except Exception:
            log.warning("chat connection: cannot record device %s as seen", self.device_id)

    # -- frames --------------------------------------------------------------------------------

    async def handle_frame(self, text: str | None) -> None:
        """Serve one frame of the client's (``None``: a binary one); every failure is answered
        with an error frame."""
        self.last_frame_at = now = self.clock.monotonic()
        if self.stale is not None:
            self._sweep()
        try:
            if not self._take_token(now):
                raise FrameError(
                    "rate_limited", "too many operations: slow down", _peek_id(text), retry=True
                )
            if text is None:
                raise FrameError("bad_frame", "frames are JSON text, not binary")
            limit = self.limits.max_frame_bytes
            if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                raise FrameError("too_large", f"a frame has at most {limit} bytes", _peek_id(text))
            request = parse_request(text)
            try:
                await self._serve(request)
            except FrameError:
                raise
            except ChatError as error:
                raise _chat_error(error, request.id) from None
            except Exception as error:  # a bug must not end the connection
                log.exception("chat connection: %r failed", type(request).__name__)
                raise FrameError("internal", "the server failed", request.id, retry=True) from error
        except FrameError as error:
            self.transport.send(error.encode())

    def _take_token(self, now: float) -> bool:
        limits = self.limits
        self.tokens = min(
            float(limits.rate_burst), self.tokens + (now - self.bucket_at) * limits.rate_per_s
        )
        self.bucket_at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    async def _serve(self, request: Request) -> None:
        if isinstance(request, Ping):
            self.transport.send(encode_reply(request.id, pong=True, version=PROTOCOL_VERSION))
            return
        if isinstance(request, Auth):
            await self._auth(request)
            return
        if self.user_id is None:
            raise FrameError("unauthenticated", "authenticate first (op auth)", request.id)
        user_id = self.user_id
        match request:
            case Join():
                await self._join(request, user_id)
            case Leave(room=room_id):
                self._drop(room_id)
                self.transport.send(encode_reply(request.id, room=room_id))
            case Send(room=room_id, body=body, client_msg_id=client_msg_id):
                message = await self._send(room_id, user_id, body, client_msg_id)
                self.transport.send(encode_message_reply(request.id, message, send=True))
            case Edit(room=room_id, seq=seq, body=body):
                message = await room_server.edit(
                    self.tree, room_id, user_id, seq, body, origin=self.pid
                )
                self.transport.send(encode_message_reply(request.id, message))
            case Delete(room=room_id, seq=seq):
                message = await room_server.delete(
                    self.tree, room_id, user_id, seq, origin=self.pid
                )
                self.transport.send(encode_message_reply(request.id, message))
            case Typing(room=room_id):
                self._typing(request, room_id, user_id)
            case Read(room=room_id, seq=seq):
                marker = await mark_read(self.tree.require_database(), room_id, user_id, seq)
                self.transport.send(encode_reply(request.id, room=room_id, seq=marker))

    async def _auth(self, request: Auth) -> None:
        if self.user_id is not None:
            raise FrameError("invalid", "this connection is authenticated already", request.id)
        try:
            user, device = await authenticate(
                self.tree.require_database(), request.token, token_ttl_s=self.tree.token_ttl_s
            )
        except InvalidToken as error:
            raise FrameError(
                "unauthenticated", f"the token does not work ({error.reason})", request.id
            ) from None
        self.user_id, self.device_id = user.id, device.id
        track_user(self.tree, self.pid, user.id, device.id)
        self.tree.sockets.add(user.id, self.transport)
        self.transport.send(
            encode_reply(request.id, user={"id": user.id, "username": user.username})
        )

    async def _join(self, request: Join, user_id: int) -> None:
        room_id = request.room
        if room_id not in self.joined and len(self.joined) >= self.limits.max_rooms_per_connection:
            raise FrameError(
                "too_many_rooms",
                f"a connection joins at most {self.limits.max_rooms_per_connection} rooms",
                request.id,
            )
        database = self.tree.require_database()
        old = self.joined.get(room_id)
        if old is not None and request.since is None:
            await require_member(database, room_id, user_id)  # joined already: nothing new
            if old.closed:
                raise NotMember(room_id, user_id)  # removed meanwhile
            self._join_reply(request, room_id, complete=True)
            return
        # Subscribe first, holding what is broadcast from now on, then check membership and
        # replay: a removal broadcast meanwhile finds the lane (and closes it), and what was
        # held is written after the replay without what it sent (see the module).
        if old is not None:
            old.closed = True  # the new lane takes over
        cursor = request.since
        lane = self._lane(room_id, cursor or 0, holding=True)
        self._subscribe(room_id, lane)
        try:
            await require_member(database, room_id, user_id)
            complete = True
            if cursor is not None:
                cursor, complete = await self._replay(database, lane, cursor)
            if lane.closed:
                raise NotMember(room_id, user_id)  # removed while joining
        except BaseException:
            self._drop(room_id)  # not joined after all (the client is told why)
            raise
        # No await from here to the lane opening: nothing is broadcast in between.
        replayed = {} if cursor is None else {"last_seq": cursor}
        self._join_reply(request, room_id, complete=complete, **replayed)
        lane.open(cursor or 0)

    async def _replay(self, database: Any, lane: Lane, cursor: int) -> tuple[int, bool]:
        """Send the room's messages after ``cursor``, at most ``max_replay``; the last
        ``seq`` sent and whether that was all. Stops early if the lane is removed."""
        sent = 0
        while not lane.closed:
            limit = min(MAX_HISTORY_LIMIT, self.limits.max_replay - sent)
            if limit <= 0:
                return cursor, False
            resume = await since(database, lane.room_id, cursor, limit)
            if lane.closed:
                break  # removed from the room meanwhile: this page is not theirs to read
            now = self.clock.now()
            for message in resume.messages:
                self.transport.send(encode_push("message", message, now))
                cursor = message.seq
            sent += len(resume.messages)
            if resume.complete:
                break
        return cursor, True

    def _join_reply(self, request: Join, room_id: int, **fields: Any) -> None:
        self.transport.send(
            encode_reply(request.id, room=room_id, **fields, presence=self._presence(room_id))
        )

    def _lane(self, room_id: int, last_seq: int, *, holding: bool) -> Lane:
        assert self.user_id is not None
        return Lane(
            self.transport,
            self.user_id,
            last_seq,
            room_id=room_id,
            holding=holding,
            on_removed=self._lane_removed,
        )

    def _subscribe(self, room_id: int, lane: Lane) -> None:
        # Invariant: a room is in ``joined`` exactly while this process is tracked in it.
        topic = room_topic(room_id)
        if room_id not in self.joined:
            assert self.user_id is not None
            assert self.device_id is not None
            track_room(self.tree, topic, self.pid, self.user_id, self.device_id)
        self.joined[room_id] = lane
        self.tree.pubsub.subscribe(topic, metadata=lane)

    def _lane_removed(self, lane: Lane) -> None:
        # Called from the broadcast (the room's process): state is dropped here, and the
        # subscription, which only this process can end, at its next frame.
        room_id = lane.room_id
        if self.joined.get(room_id) is not lane:
            return
        del self.joined[room_id]
        assert self.user_id is not None
        untrack_room(self.tree, room_topic(room_id), self.pid, self.user_id)
        if self.stale is None:
            self.stale = []
        self.stale.append(room_id)

    def _sweep(self) -> None:
        stale, self.stale = self.stale or [], None
        for room_id in stale:
            if room_id not in self.joined:  # not joined again since
                self.tree.pubsub.unsubscribe(room_topic(room_id))

    def _presence(self, room_id: int) -> dict[str, dict[str, int]]:
        return room_presence(self.tree, room_topic(room_id))

    def _drop(self, room_id: int) -> None:
        if self.typing_at is not None:
            self.typing_at.pop(room_id, None)
        lane = self.joined.pop(room_id, None)
        if lane is None:
            return
        lane.closed = True
        topic = room_topic(room_id)
        self.tree.pubsub.unsubscribe(topic)
        assert self.user_id is not None
        untrack_room(self.tree, topic, self.pid, self.user_id)

    async def _send(self, room_id: int, user_id: int, body: str, client_msg_id: str) -> Any:
        for attempt in range(_SEND_ATTEMPTS):
            try:
                return await room_server.send(
                    self.tree, room_id, user_id, body, client_msg_id, origin=self.pid
                )
            except RoomUnavailable as error:
                # A room that died is replaced at once; one that is too slow would only be
                # given more to do.
                if attempt == _SEND_ATTEMPTS - 1 or error.reason == "timeout":
                    raise
        raise AssertionError("unreachable")

    def _typing(self, request: Typing, room_id: int, user_id: int) -> None:
        if room_id not in self.joined:
            raise FrameError("not_joined", "join the room before saying you type", request.id)
        now = self.clock.monotonic()
        if self.typing_at is None:
            self.typing_at = {}
        last = self.typing_at.get(room_id)
        sent = last is None or now - last >= self.limits.typing_interval_s
        if sent:
            self.typing_at[room_id] = now
            frame = encode({"type": "typing", "room": room_id, "user": user_id})
            self.tree.pubsub.broadcast_from(
                self.pid,
                room_topic(room_id),
                RoomPush(room_id, "typing", 0, frame),
                dispatcher=dispatch,
            )
        # A typing notice beyond the interval is dropped, not an error: clients send them
        # on every key press.
        self.transport.send(encode_reply(request.id, sent=sent))


def _chat_error(error: ChatError, request_id: Any) -> FrameError:
    message = str(error)
    match error:
        case InvalidInput(code="too_long", field="body"):
            return FrameError("too_large", message, request_id)
        case InvalidInput():
            return FrameError("invalid", message, request_id)
        case NotMember():
            return FrameError("not_member", message, request_id)
        case NotFound(what="room"):
            return FrameError("not_member", f"not a member of room {error.key!r}", request_id)
        case NotFound():
            return FrameError("not_found", message, request_id)
        case Forbidden():
            return FrameError("forbidden", message, request_id)
        case Muted():
            return FrameError("muted", message, request_id)
        case Banned():
            return FrameError("banned", message, request_id)
        case InvalidToken():
            return FrameError("unauthenticated", message, request_id)
        case RoomUnavailable():
            return FrameError("internal", "the room is restarting: retry", request_id, retry=True)
    log.warning("chat connection: %s", message)
    return FrameError("internal", message, request_id, retry=True)


# "id" near the start of a frame: a string (no escapes) or an integer.
_ID = re.compile(r'"id"\s*:\s*(?:"([^"\\]{0,64})"|(-?\d{1,18})\b)')


def _peek_id(text: str | None) -> Any:
    """The request id of a frame that is not parsed (too large, over the rate), when it is
    found cheaply near its start; else ``None``."""
    if text is None:
        return None
    found = _ID.search(text, 0, 256)
    if found is None:
        return None
    return found[1] if found[1] is not None else int(found[2])
