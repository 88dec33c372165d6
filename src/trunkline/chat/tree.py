"""The chat server's processes on one node: :class:`ChatTree`.

::

    chat (one_for_one)
    ├── presence      the Presence process: diffs, and other nodes' presences (presence.py)
    ├── search_index  SQLite only: indexes new messages for search (search_index.py)
    ├── rooms         DynamicSupervisor: a RoomServer per active room (room_server.py)
    └── connections   DynamicSupervisor: a Connection per WebSocket (connection.py)

Beside the processes the tree holds what they share, none of it a process:

- ``rooms``: a unique :class:`~trunkline.otp.Registry`, room id -> its room process (the
  room's ``Via`` name);
- ``pubsub``: the :class:`~trunkline.otp.PubSub` of the topics ``room:<id>``, on which room
  processes broadcast and connection processes listen;
- ``presence``: the :class:`~trunkline.otp.Presence` where connections track themselves,
  per user and per room: "is this user connected" is one dictionary lookup, the seam of
  the notification events too;
- ``message_writer``: the :class:`~trunkline.chat.message_writer.MessageWriter` that stores
  the room processes' messages in batches (``limits.batch_interval_s`` apart at least);
- ``sockets``: the transports of the authenticated connections on this node, by user, for
  pushes to a user rather than a room (:func:`~trunkline.chat.pushes.push_to_user`).

Making one starts nothing: put :meth:`ChatTree.child_spec` in a supervisor, or call
:meth:`ChatTree.start_link`. Room and connection processes are ``temporary``: a room process
that dies is started afresh, from the database, by the next call for its room
(:func:`~trunkline.chat.room_server.room`); a connection that dies ends its socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .accounts import TOKEN_TTL_S
from .message_writer import MessageWriter
from .presence import USERS_TOPIC
from .pushes import UserSockets, dispatch
from .search_index import SearchIndexer

if TYPE_CHECKING:
    from .offline import OfflineHook

__all__ = ["ChatLimits", "ChatTree", "room_topic"]


def room_topic(room_id: int) -> str:
    """The PubSub topic of a room's pushes: ``"room:<id>"``."""
    return f"room:{room_id}"


@dataclass(frozen=True)
class ChatLimits:
    """The limits of the chat server's processes; each is checked when made.

    Attributes:
        room_idle_s: a room process with no request and no subscriber for this long stops.
        max_frame_bytes: the largest client frame served (larger: ``too_large``).
        rate_per_s: operations a connection may make per second, sustained (token bucket).
        rate_burst: operations it may make at once (the bucket's size).
        max_rooms_per_connection: rooms one connection may have joined at once.
        idle_timeout_s: a connection that sends no frame for this long is closed.
        max_outbound_bytes: bytes of frames waiting to be written to a client, at most; past
            it the client is too slow and is disconnected.
        max_replay: the most messages a ``join`` with ``since`` replays (``complete`` is false
            when there were more).
        typing_interval_s: at most one typing push per connection and room per interval.
        presence_interval_s: at most one presence diff per room per interval.
        search_index_interval_s: on SQLite, messages are indexed for search this often
            (a search indexes what waits itself first; see ``search_index.py``).
        request_timeout_s: a request to a room's process (send, edit, delete) not answered
            within this fails with ``RoomUnavailable`` (``internal``, retry): whether it was
            done is unknown, so a send is retried with the same ``client_msg_id``.
        batch_interval_s: batches of sends are stored at most this often (0, the default:
            each as soon as the last is stored): less CPU, for that much more latency; see
            ``message_writer.py``.
    """

    room_idle_s: float = 60.0
    max_frame_bytes: int = 16_384
    rate_per_s: float = 20.0
    rate_burst: int = 50
    max_rooms_per_connection: int = 100
    idle_timeout_s: float = 90.0
    max_outbound_bytes: int = 1_048_576
    max_replay: int = 1_000
    typing_interval_s: float = 2.0
    request_timeout_s: float = 10.0
    presence_interval_s: float = 1.0
    search_index_interval_s: float = 1.0
    batch_interval_s: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "room_idle_s",
            "rate_per_s",
            "idle_timeout_s",
            "typing_interval_s",
            "request_timeout_s",
            "presence_interval_s",
            "search_index_interval_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"ChatLimits.{name} must be a number > 0, not {value!r}")
        value = self.batch_interval_s
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ValueError(f"ChatLimits.batch_interval_s must be in [0, 1), not {value!r}")
        for name in (
            "max_frame_bytes",
            "rate_burst",
            "max_rooms_per_connection",
            "max_outbound_bytes",
            "max_replay",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"ChatLimits.{name} must be an integer >= 1, not {value!r}")


@dataclass(eq=False)
class ChatTree:
    """The chat processes of a node and what they share; see the module documentation.

    Args:
        database: the database (or set :attr:`database` before starting).
        limits: the limits of rooms and connections.
        token_ttl_s: how long a token lives unused, as the HTTP API has it (the socket's
            ``auth`` renews it the same way).
        pubsub: the PubSub of room topics (a node-local one by default).
        presence: the Presence of users and rooms (by default one on ``pubsub``, with
            ``limits.presence_interval_s``).
        offline_hooks: called with each :class:`~trunkline.chat.offline.OfflineRecipient`
            (a member a new message is for, with no device connected): see ``offline.py``.

    Example::

        tree = ChatTree(database)
        await tree.start_link()
        pid = await room(tree, room_id)                 # started on demand
        message = await send(tree, room_id, ada.id, "hi", "c-1")
    """

    database: db.Database | None = None
    limits: ChatLimits = field(default_factory=ChatLimits)
    token_ttl_s: float = TOKEN_TTL_S
    pubsub: otp.PubSub = field(default_factory=lambda: otp.PubSub("chat"))
    presence: otp.Presence = None  # type: ignore[assignment]  # made in __post_init__
    rooms: otp.Registry = field(default_factory=lambda: otp.Registry("unique", name="chat.rooms"))
    room_supervisor: otp.Pid | None = None
    offline_hooks: list[OfflineHook] = field(default_factory=list)
    connection_supervisor: otp.Pid | None = None
    message_writer: MessageWriter = field(default_factory=MessageWriter)
    sockets: UserSockets = field(default_factory=UserSockets)

    def __post_init__(self) -> None:
        self.message_writer.batch_interval_s = self.limits.batch_interval_s
        if self.presence is None:
            self.presence = otp.Presence(
                "chat",
                self.pubsub,
                broadcast_interval_s=self.limits.presence_interval_s,
                heartbeat_interval_s=max(15.0, self.limits.presence_interval_s),
                down_period_s=max(30.0, 2 * self.limits.presence_interval_s),
                dispatcher=dispatch,
            )

    def require_database(self) -> db.Database:
        """The database.

        Raises:
            RuntimeError: none was given.
        """
        if self.database is None:
            raise RuntimeError("the chat tree has no database")
        return self.database

    def is_connected(self, user_id: int) -> bool:
        """Whether the user has a connection (an authenticated socket) on any node the
        PubSub reaches."""
        return bool(self.presence.get(USERS_TOPIC, user_id))

    def child_spec(self, id: Any = "chat") -> otp.ChildSpec:
        """A child spec that starts the tree (a supervisor) under another supervisor."""
        return otp.ChildSpec(id, self.start_link, type="supervisor")

    async def start_link(self) -> otp.Pid:
        """Start the tree, linked to the caller; its pid."""
        database = self.require_database()
        children = [self.presence.child_spec("presence")]
        if database.dialect == "sqlite":
            interval_s = self.limits.search_index_interval_s
            children.append(
                otp.ChildSpec(
                    "search_index", lambda: SearchIndexer.start_link((database, interval_s))
                )
            )
        children += [
            otp.ChildSpec("rooms", self._starter("room_supervisor"), type="supervisor"),
            otp.ChildSpec("connections", self._starter("connection_supervisor"), type="supervisor"),
        ]
        pid: otp.Pid = await otp.Supervisor.start_link(children, strategy="one_for_one")
        return pid

    def _starter(self, attribute: str) -> Callable[[], Any]:
        async def start() -> otp.Pid:
            pid = await otp.DynamicSupervisor.start_link()
            setattr(self, attribute, pid)
            return pid

        return start
