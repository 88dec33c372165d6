"""Rooms and their members: create, open a direct room, join, invite, leave, look up.

Pure functions on the database (a :class:`~trunkline.db.Database` or a
:class:`~trunkline.db.Transaction`: given a transaction, they join it). Each checks what it
needs and raises a :class:`~trunkline.chat.ChatError` saying why, having changed nothing.

The rules:

- **Public** rooms: anyone who is not banned joins. **Private** rooms: an invitation is needed,
  and only owners and admins invite (any member may invite to a public room; the invitation is
  then only a hint to the invitee).
- **Direct** rooms hold exactly two users, who are both plain members: nobody joins, is
  invited, leaves or is moderated there. :func:`open_direct` returns the pair's one room,
  whichever way round it is asked and however many nodes ask at once.
- The creator of a room is its **owner**. An owner who leaves hands the room to the admin who
  joined first, else to the member who joined first; a room whose last member leaves stays,
  empty.
- Banned users cannot join or be invited until the ban ends (see ``moderation.py``).

Timestamps come from the node's clock (``otp.current_node().clock``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from trunkline import db, otp

from .exceptions import Banned, Forbidden, InvalidInput, NotFound, NotMember
from .validation import check_display_name

__all__ = [
    "MAX_LIST_LIMIT",
    "MAX_TOPIC_CHARS",
    "Ban",
    "Invitation",
    "Member",
    "Role",
    "Room",
    "RoomKind",
    "active_ban",
    "create_room",
    "get_room",
    "invitations",
    "invite",
    "join",
    "leave",
    "member",
    "members",
    "open_direct",
    "public_rooms",
    "require_member",
    "user_rooms",
]

MAX_TOPIC_CHARS = 500
MAX_LIST_LIMIT = 200
"""The most rooms one call of :func:`public_rooms` returns."""

Queryable = db.Database | db.Transaction


class RoomKind(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    DIRECT = "direct"


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Room:
    """A room. ``name`` is ``None`` for a direct room; ``created_by`` is ``None`` once that
    user is gone."""

    id: int
    kind: RoomKind
    name: str | None
    topic: str
    created_by: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: db.Row) -> Room:
        return cls(
            row["id"],
            RoomKind(row["kind"]),
            row["name"],
            row["topic"],
            row["created_by"],
            row["created_at"],
        )


@dataclass(frozen=True)
class Member:
    """One user's place in a room: their role, their mute and their read marker."""

    room_id: int
    user_id: int
    role: Role
    joined_at: datetime
    muted: bool
    muted_until: datetime | None
    last_read_seq: int

    def is_muted(self, now: datetime) -> bool:
        """Whether the mute holds at ``now`` (a mute with no end always does)."""
        return self.muted and (self.muted_until is None or self.muted_until > now)

    @property
    def moderates(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    @classmethod
    def from_row(cls, row: db.Row) -> Member:
        return cls(
            row["room_id"],
            row["user_id"],
            Role(row["role"]),
            row["joined_at"],
            bool(row["muted"]),
            row["muted_until"],
            row["last_read_seq"],
        )


_ROOM_COLUMNS = "id, kind, name, topic, created_by, created_at"


@dataclass(frozen=True)
class Ban:
    """A user banned from a room by ``banned_by`` (``None`` once that user is gone), until
    ``until`` (``None``: no end)."""

    room_id: int
    user_id: int
    banned_by: int | None
    banned_at: datetime
    until: datetime | None

    def holds(self, now: datetime) -> bool:
        """Whether the ban keeps the user out at ``now``."""
        return self.until is None or self.until > now


@dataclass(frozen=True)
class Invitation:
    """An invitation to ``room``, by ``invited_by`` (``None`` once that user is gone), not used
    yet: joining the room uses it; a ban, or the room's removal, takes it away."""

    room: Room
    invited_by: int | None
    invited_at: datetime


_MEMBER_COLUMNS = "room_id, user_id, role, joined_at, muted, muted_until, last_read_seq"

_INSERT_ROOM = db.Query(
    "chat.rooms.insert",
    f"INSERT INTO chat_rooms (kind, name, topic, created_by, created_at) "
    f"VALUES ($1, $2, $3, $4, $5) RETURNING {_ROOM_COLUMNS}",
)
_INSERT_DIRECT = db.Query(
    "chat.rooms.insert_direct",
    "INSERT INTO chat_rooms (kind, created_by, created_at, direct_key) "
    "VALUES ('direct', $1, $2, $3) ON CONFLICT (direct_key) DO NOTHING RETURNING id",
)
_GET_DIRECT = db.Query(
    "chat.rooms.get_direct", f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE direct_key = $1"
)
_GET_ROOM = db.Query("chat.rooms.get", f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE id = $1")
# Membership changes of a room (join, invite, leave, moderation) take its row first, so they
# run one at a time per room: a join cannot slip past a ban being written, nor a leaving owner
# hand the room to a member leaving at the same moment. NO KEY: sends, whose foreign key
# takes a KEY SHARE lock on the room, are not held up. SQLite has one writer anyway.
_LOCK_ROOM = db.Query(
    "chat.rooms.lock",
    postgresql=f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE id = $1 FOR NO KEY UPDATE",
    sqlite=f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE id = $1",
)
_PUBLIC_ROOMS = db.Query(
    "chat.rooms.public",
    f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE kind = 'public' AND id > $1 "
    "ORDER BY id LIMIT $2",
)
_USER_ROOMS = db.Query(
    "chat.rooms.of_user",
    "SELECT r.id, r.kind, r.name, r.topic, r.created_by, r.created_at "
    "FROM chat_room_members m JOIN chat_rooms r ON r.id = m.room_id "
    "WHERE m.user_id = $1 ORDER BY r.id",
)
_INSERT_MEMBER = db.Query(
    "chat.members.insert",
    "INSERT INTO chat_room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) "
    f"ON CONFLICT (room_id, user_id) DO NOTHING RETURNING {_MEMBER_COLUMNS}",
)
_GET_MEMBER = db.Query(
    "chat.members.get",
    f"SELECT {_MEMBER_COLUMNS} FROM chat_room_members WHERE room_id = $1 AND user_id = $2",
)
_MEMBERS = db.Query(
    "chat.members.list",
    f"SELECT {_MEMBER_COLUMNS} FROM chat_room_members WHERE room_id = $1 "
    "ORDER BY joined_at, user_id",
)
_DELETE_MEMBER = db.Query(
    "chat.members.delete", "DELETE FROM chat_room_members WHERE room_id = $1 AND user_id = $2"
)
_SUCCESSOR = db.Query(
    "chat.members.successor",
    "SELECT user_id FROM chat_room_members WHERE room_id = $1 "
    "ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, joined_at, user_id LIMIT 1",
)
_SET_ROLE = db.Query(
    "chat.members.set_role",
    "UPDATE chat_room_members SET role = $3 WHERE room_id = $1 AND user_id = $2",
)
_GET_BAN = db.Query(
    "chat.bans.get",
    "SELECT banned_by, banned_at, banned_until FROM chat_room_bans "
    "WHERE room_id = $1 AND user_id = $2",
)
_DELETE_BAN = db.Query(
    "chat.bans.delete", "DELETE FROM chat_room_bans WHERE room_id = $1 AND user_id = $2"
)
_INSERT_INVITE = db.Query(
    "chat.invites.insert",
    "INSERT INTO chat_room_invites (room_id, user_id, invited_by, invited_at) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING",
)
_INVITATIONS = db.Query(
    "chat.invites.of_user",
    "SELECT r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, "
    "i.invited_by, i.invited_at "
    "FROM chat_room_invites i JOIN chat_rooms r ON r.id = i.room_id "
    "WHERE i.user_id = $1 ORDER BY i.invited_at, r.id",
)
_DELETE_INVITE = db.Query(
    "chat.invites.delete", "DELETE FROM chat_room_invites WHERE room_id = $1 AND user_id = $2"
)
_USER_EXISTS = db.Query("chat.users.exists", "SELECT 1 FROM chat_users WHERE id = $1")


def _now() -> datetime:
    # The node clock's time: what every chat timestamp is (MockClock drives it in tests).
    return otp.current_node().clock.now()


# -- creating rooms --


async def create_room(
    database: Queryable, owner_id: int, name: str, *, private: bool = False, topic: str = ""
) -> Room:
    """Create a public (or private) room; its creator is its owner.

    Args:
        owner_id: the creating user.
        name: 1 to 64 characters once trimmed, no control characters.
        private: joined by invitation only.
        topic: at most :data:`MAX_TOPIC_CHARS` characters, trimmed.

    Raises:
        InvalidInput: a bad name (field ``"name"``) or topic (field ``"topic"``).
        NotFound: no such user.
    """
    name = check_display_name(name, "name")
    topic = _check_topic(topic)
    kind = RoomKind.PRIVATE if private else RoomKind.PUBLIC
    async with database.transaction() as tx:
        await _require_user(tx, owner_id)
        at = _now()
        row = await tx.fetch_one(_INSERT_ROOM, kind.value, name, topic, owner_id, at)
        assert row is not None
        await tx.execute(_INSERT_MEMBER, row["id"], owner_id, Role.OWNER.value, at)
    return Room.from_row(row)


async def open_direct(database: Queryable, a: int, b: int) -> Room:
    """The direct room of users ``a`` and ``b``, created the first time it is asked for.

    Whichever way round, and however many callers race: the unique ``direct_key`` makes one
    insert win; the others find its room.

    Raises:
        InvalidInput: ``a == b`` (field ``"user_id"``).
        NotFound: either user does not exist.
    """
    if a == b:
        raise InvalidInput("user_id", "same_user", "a direct room is between two different users")
    low, high = sorted((a, b))
    key = f"{low}:{high}"
    async with database.transaction() as tx:
        await _require_user(tx, low)
        await _require_user(tx, high)
        at = _now()
        room_id = await tx.fetch_val(_INSERT_DIRECT, a, at, key)
        if room_id is not None:
            for user in (low, high):
                await tx.execute(_INSERT_MEMBER, room_id, user, Role.MEMBER.value, at)
    row = await _fetch_direct(database, key)
    return Room.from_row(row)


async def _fetch_direct(database: Queryable, key: str) -> db.Row:
    row = await database.fetch_one(_GET_DIRECT, key)
    assert row is not None, f"direct room {key} vanished"
    return row


# -- looking up --


async def get_room(database: Queryable, room_id: int) -> Room:
    """The room ``room_id``.

    Raises:
        NotFound: no such room.
    """
    row = await database.fetch_one(_GET_ROOM, room_id)
    if row is None:
        raise NotFound("room", room_id)
    return Room.from_row(row)


async def _lock_room(tx: db.Transaction, room_id: int) -> Room:
    # The room, its row held until the transaction ends (see _LOCK_ROOM).
    row = await tx.fetch_one(_LOCK_ROOM, room_id)
    if row is None:
        raise NotFound("room", room_id)
    return Room.from_row(row)


async def public_rooms(database: Queryable, *, after_id: int = 0, limit: int = 50) -> list[Room]:
    """The public rooms, by id, after ``after_id`` (a cursor: the last id of the previous
    page); at most ``limit`` (capped at :data:`MAX_LIST_LIMIT`)."""
    limit = _check_limit(limit, MAX_LIST_LIMIT)
    return [Room.from_row(row) for row in await database.fetch(_PUBLIC_ROOMS, after_id, limit)]


async def user_rooms(database: Queryable, user_id: int) -> list[Room]:
    """The rooms ``user_id`` is a member of (direct rooms included), by id."""
    return [Room.from_row(row) for row in await database.fetch(_USER_ROOMS, user_id)]


async def members(database: Queryable, room_id: int) -> list[Member]:
    """The members of a room with their roles, in the order they joined.

    Raises:
        NotFound: no such room.
    """
    rows = await database.fetch(_MEMBERS, room_id)
    if not rows:
        await get_room(database, room_id)  # an empty room, or none at all?
    return [Member.from_row(row) for row in rows]


async def member(database: Queryable, room_id: int, user_id: int) -> Member | None:
    """``user_id``'s membership of the room, or ``None``."""
    row = await database.fetch_one(_GET_MEMBER, room_id, user_id)
    return None if row is None else Member.from_row(row)


async def require_member(database: Queryable, room_id: int, user_id: int) -> Member:
    """``user_id``'s membership of the room: what every path that reads or writes a room's
    content checks first.

    Raises:
        NotFound: no such room.
        NotMember: the room exists; the user is not in it.
    """
    found = await member(database, room_id, user_id)
    if found is None:
        await get_room(database, room_id)
        raise NotMember(room_id, user_id)
    return found


async def active_ban(database: Queryable, room_id: int, user_id: int) -> Ban | None:
    """The ban that keeps ``user_id`` out of the room now, or ``None`` (never banned, or the
    ban has ended)."""
    row = await database.fetch_one(_GET_BAN, room_id, user_id)
    if row is None:
        return None
    ban = Ban(room_id, user_id, row["banned_by"], row["banned_at"], row["banned_until"])
    return ban if ban.holds(_now()) else None


# -- joining and leaving --


async def invite(database: Queryable, room_id: int, by: int, user_id: int) -> None:
    """``by`` invites ``user_id`` to the room; joining a private room takes an invitation.

    Inviting a member, or someone already invited, does nothing.

    Raises:
        NotFound: no such room or user.
        NotMember: ``by`` is not in the room.
        Forbidden: a direct room; a private room and ``by`` is not owner or admin.
        Banned: ``user_id`` is banned from the room.
    """
    async with database.transaction() as tx:
        room = await _lock_room(tx, room_id)
        if room.kind is RoomKind.DIRECT:
            raise Forbidden("invite", "a direct room has its two members only")
        inviter = await require_member(tx, room_id, by)
        if room.kind is RoomKind.PRIVATE and not inviter.moderates:
            raise Forbidden("invite", "only owners and admins invite to a private room")
        await _require_user(tx, user_id)
        if await member(tx, room_id, user_id) is not None:
            return
        ban = await active_ban(tx, room_id, user_id)
        if ban is not None:
            raise Banned(room_id, user_id, ban.until)
        await tx.execute(_INSERT_INVITE, room_id, user_id, by, _now())


async def invitations(database: Queryable, user_id: int) -> list[Invitation]:
    """The invitations of ``user_id`` not used yet, oldest first (one query): how someone
    invited to a private room finds it."""
    rows = await database.fetch(_INVITATIONS, user_id)
    return [Invitation(Room.from_row(row), row["invited_by"], row["invited_at"]) for row in rows]


async def join(database: Queryable, room_id: int, user_id: int) -> Member:
    """``user_id`` joins the room as a member (a member already: their membership as it is).

    Raises:
        NotFound: no such room or user.
        Forbidden: a direct room; a private room without an invitation.
        Banned: the user is banned from the room.
    """
    async with database.transaction() as tx:
        room = await _lock_room(tx, room_id)
        if room.kind is RoomKind.DIRECT:
            raise Forbidden("join", "a direct room has its two members only")
        present = await member(tx, room_id, user_id)
        if present is not None:
            return present
        await _require_user(tx, user_id)
        ban = await active_ban(tx, room_id, user_id)
        if ban is not None:
            raise Banned(room_id, user_id, ban.until)
        invited = await tx.execute(_DELETE_INVITE, room_id, user_id)
        if room.kind is RoomKind.PRIVATE and not invited:
            raise Forbidden("join", "a private room is joined by invitation")
        await tx.execute(_DELETE_BAN, room_id, user_id)  # an expired one, if any
        row = await tx.fetch_one(_INSERT_MEMBER, room_id, user_id, Role.MEMBER.value, _now())
        if row is None:  # joined meanwhile, through another node
            row = await tx.fetch_one(_GET_MEMBER, room_id, user_id)
        assert row is not None
    return Member.from_row(row)


async def leave(database: Queryable, room_id: int, user_id: int) -> int | None:
    """``user_id`` leaves the room.

    Returns:
        The id of the new owner when the owner left and the room passed on (to the admin who
        joined first, else the member who joined first); else ``None``.

    Raises:
        NotFound: no such room.
        NotMember: the user is not in the room.
        Forbidden: a direct room.
    """
    async with database.transaction() as tx:
        room = await _lock_room(tx, room_id)
        if room.kind is RoomKind.DIRECT:
            raise Forbidden("leave", "a direct room cannot be left")
        leaving = await require_member(tx, room_id, user_id)
        await tx.execute(_DELETE_MEMBER, room_id, user_id)
        if leaving.role is not Role.OWNER:
            return None
        successor: int | None = await tx.fetch_val(_SUCCESSOR, room_id)
        if successor is not None:
            await tx.execute(_SET_ROLE, room_id, successor, Role.OWNER.value)
        return successor


# -- helpers --


async def _require_user(database: Queryable, user_id: int) -> None:
    if await database.fetch_val(_USER_EXISTS, user_id) is None:
        raise NotFound("user", user_id)


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise InvalidInput("topic", "wrong_type", "a topic is a string")
    topic = topic.strip()
    if len(topic) > MAX_TOPIC_CHARS:
        raise InvalidInput("topic", "too_long", f"a topic has at most {MAX_TOPIC_CHARS} characters")
    if "\x00" in topic:
        raise InvalidInput("topic", "control_characters", "a topic cannot hold NUL characters")
    return topic


def _check_limit(limit: object, most: int) -> int:
    if type(limit) is not int or limit < 1:
        raise InvalidInput("limit", "wrong_type", f"a limit is an integer >= 1, got {limit!r}")
    return min(int(limit), most)
