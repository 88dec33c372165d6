"""trunkline.chat: the chat server - accounts, rooms and messages, and its processes.

The services are plain async functions over ``trunkline.db``, each taking the database (or a
transaction) first; the web layer and the connection processes call them. The processes -
one per active room, one per connection - are in :class:`ChatTree`. See ``docs/chat.md``.

::

    from trunkline import chat, db

    async with db.connect("sqlite:///./trunkline.db") as database:
        await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
        user = await chat.register(database, "ada", "correct horse battery", "Ada")
        user, token, device = await chat.login(database, "ada", "correct horse battery")
        user, device = await chat.authenticate(database, token)
"""

from .accounts import (
    LOGIN_EVENT,
    TOKEN_TTL_S,
    TOUCH_INTERVAL_S,
    Authenticated,
    Device,
    Login,
    User,
    authenticate,
    get_user,
    get_user_by_name,
    get_users,
    last_seen,
    list_devices,
    login,
    logout,
    register,
    revoke_device,
    seen,
)
from .connection import Connection, ConnectionServer, MemoryTransport, Transport
from .exceptions import (
    Banned,
    ChatError,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    Muted,
    NotFound,
    NotMember,
    TooManyAttempts,
    UsernameTaken,
)
from .history import MAX_HISTORY_LIMIT, Resume, history, since
from .limits import LoginLimiter
from .mentions import mentions
from .messages import (
    MAX_BODY_CHARS,
    Message,
    append,
    check_body,
    delete_message,
    edit_message,
    get_message,
)
from .migrations import COMPONENT, MIGRATIONS
from .moderation import ban, kick, mute, set_role, unban, unmute
from .offline import OFFLINE_EVENT, OfflineHook, OfflineRecipient
from .passwords import Passwords
from .presence import USERS_TOPIC, UserPresence, is_online, users_presence
from .protocol import PROTOCOL_VERSION, FrameError
from .read_markers import mark_read, unread_counts
from .room_server import RoomServer, RoomUnavailable
from .rooms import (
    MAX_TOPIC_CHARS,
    Ban,
    Invitation,
    Member,
    Role,
    Room,
    RoomKind,
    active_ban,
    create_room,
    get_room,
    invitations,
    invite,
    join,
    leave,
    member,
    members,
    open_direct,
    public_rooms,
    require_member,
    user_rooms,
)
from .search import MAX_SEARCH_LIMIT, search
from .tree import ChatLimits, ChatTree, room_topic
from .validation import RESERVED_USERNAMES, normalize_username

__all__ = [
    "COMPONENT",
    "LOGIN_EVENT",
    "MAX_BODY_CHARS",
    "MAX_HISTORY_LIMIT",
    "MAX_SEARCH_LIMIT",
    "MAX_TOPIC_CHARS",
    "MIGRATIONS",
    "OFFLINE_EVENT",
    "PROTOCOL_VERSION",
    "RESERVED_USERNAMES",
    "TOKEN_TTL_S",
    "TOUCH_INTERVAL_S",
    "USERS_TOPIC",
    "Authenticated",
    "Ban",
    "Banned",
    "ChatError",
    "ChatLimits",
    "ChatTree",
    "Connection",
    "ConnectionServer",
    "Device",
    "Forbidden",
    "FrameError",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidToken",
    "Invitation",
    "Login",
    "LoginLimiter",
    "Member",
    "MemoryTransport",
    "Message",
    "Muted",
    "NotFound",
    "NotMember",
    "OfflineHook",
    "OfflineRecipient",
    "Passwords",
    "Resume",
    "Role",
    "Room",
    "RoomKind",
    "RoomServer",
    "RoomUnavailable",
    "TooManyAttempts",
    "Transport",
    "User",
    "UserPresence",
    "UsernameTaken",
    "active_ban",
    "append",
    "authenticate",
    "ban",
    "check_body",
    "create_room",
    "delete_message",
    "edit_message",
    "get_message",
    "get_room",
    "get_user",
    "get_user_by_name",
    "get_users",
    "history",
    "invitations",
    "invite",
    "is_online",
    "join",
    "kick",
    "last_seen",
    "leave",
    "list_devices",
    "login",
    "logout",
    "mark_read",
    "member",
    "members",
    "mentions",
    "mute",
    "normalize_username",
    "open_direct",
    "public_rooms",
    "register",
    "require_member",
    "revoke_device",
    "room_topic",
    "search",
    "seen",
    "set_role",
    "since",
    "unban",
    "unmute",
    "unread_counts",
    "user_rooms",
    "users_presence",
]
