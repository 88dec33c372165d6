"""Moderation: kick, ban, unban, mute, unmute, and setting roles.

Who may act on whom, the same for every action:

- only an **owner** or an **admin** of the room moderates (else :class:`Forbidden`);
- nobody acts on **themselves**, nobody acts on the **owner**, and an admin does not act on
  another **admin** (only the owner does);
- direct rooms are not moderated;
- only the owner changes roles (:func:`set_role`: ``admin`` or ``member``).

A ban removes the user from the room and keeps them out (``join`` and ``invite`` raise
:class:`Banned`) until it ends or is lifted; a user who is not a member can be banned too,
ahead of a rejoin. A mute keeps a member in the room but refuses their sends and edits
(:class:`Muted`). Both may end on their own: ``duration_s`` from now on the node's clock, or
never when it is ``None``.
"""

from __future__ import annotations

import math
from datetime import timedelta

from trunkline import db

from .exceptions import Forbidden, InvalidInput, NotFound, NotMember
from .rooms import (
    Member,
    Queryable,
    Role,
    RoomKind,
    _lock_room,
    _now,
    member,
    require_member,
)

__all__ = ["ban", "kick", "mute", "set_role", "unban", "unmute"]

_DELETE_MEMBER = db.Query(
    "chat.members.delete", "DELETE FROM chat_room_members WHERE room_id = $1 AND user_id = $2"
)
_DELETE_INVITE = db.Query(
    "chat.invites.delete", "DELETE FROM chat_room_invites WHERE room_id = $1 AND user_id = $2"
)
_UPSERT_BAN = db.Query(
    "chat.bans.upsert",
    "INSERT INTO chat_room_bans (room_id, user_id, banned_by, banned_at, banned_until) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id) DO UPDATE SET "
    "banned_by = excluded.banned_by, banned_at = excluded.banned_at, "
    "banned_until = excluded.banned_until",
)
_DELETE_BAN = db.Query(
    "chat.bans.delete", "DELETE FROM chat_room_bans WHERE room_id = $1 AND user_id = $2"
)
_SET_MUTE = db.Query(
    "chat.members.mute",
    "UPDATE chat_room_members SET muted = $3, muted_until = $4 WHERE room_id = $1 AND user_id = $2",
)
_SET_ROLE = db.Query(
    "chat.members.set_role",
    "UPDATE chat_room_members SET role = $3 WHERE room_id = $1 AND user_id = $2",
)
_USER_EXISTS = db.Query("chat.users.exists", "SELECT 1 FROM chat_users WHERE id = $1")


async def kick(database: Queryable, room_id: int, by: int, user_id: int) -> None:
    """``by`` removes ``user_id`` from the room; they may join again (a private room: with a
    new invitation).

    Raises:
        NotFound: no such room.
        NotMember: ``by`` or ``user_id`` is not in the room.
        Forbidden: see the module's rules.
    """
    async with database.transaction() as tx:
        await _authorize(tx, room_id, by, user_id, "kick", target_must_be_member=True)
        await tx.execute(_DELETE_MEMBER, room_id, user_id)


async def ban(
    database: Queryable, room_id: int, by: int, user_id: int, *, duration_s: float | None = None
) -> None:
    """``by`` bans ``user_id`` from the room, for ``duration_s`` or for good (``None``).

    The user leaves the room, their invitation (if any) is dropped, and they cannot join or be
    invited while the ban holds. Banning again replaces the ban's end.

    Raises:
        NotFound: no such room or user.
        NotMember: ``by`` is not in the room.
        Forbidden: see the module's rules.
        InvalidInput: ``duration_s`` is not a positive number (field ``"duration_s"``).
    """
    at = _now()
    until = None if duration_s is None else at + timedelta(seconds=_check_duration(duration_s))
    async with database.transaction() as tx:
        await _authorize(tx, room_id, by, user_id, "ban", target_must_be_member=False)
        await tx.execute(_UPSERT_BAN, room_id, user_id, by, at, until)
        await tx.execute(_DELETE_MEMBER, room_id, user_id)
        await tx.execute(_DELETE_INVITE, room_id, user_id)


async def unban(database: Queryable, room_id: int, by: int, user_id: int) -> bool:
    """``by`` lifts ``user_id``'s ban. Returns whether there was one (ended or not).

    Raises:
        NotFound: no such room or user.
        NotMember: ``by`` is not in the room.
        Forbidden: see the module's rules.
    """
    async with database.transaction() as tx:
        await _authorize(tx, room_id, by, user_id, "unban", target_must_be_member=False)
        return await tx.execute(_DELETE_BAN, room_id, user_id) > 0


async def mute(
    database: Queryable, room_id: int, by: int, user_id: int, *, duration_s: float | None = None
) -> None:
    """``by`` mutes ``user_id`` in the room, for ``duration_s`` or until unmuted (``None``).

    Raises:
        NotFound: no such room.
        NotMember: ``by`` or ``user_id`` is not in the room.
        Forbidden: see the module's rules.
        InvalidInput: ``duration_s`` is not a positive number (field ``"duration_s"``).
    """
    at = _now()
    until = None if duration_s is None else at + timedelta(seconds=_check_duration(duration_s))
    async with database.transaction() as tx:
        await _authorize(tx, room_id, by, user_id, "mute", target_must_be_member=True)
        await tx.execute(_SET_MUTE, room_id, user_id, True, until)


async def unmute(database: Queryable, room_id: int, by: int, user_id: int) -> None:
    """``by`` lifts ``user_id``'s mute (muted or not).

    Raises:
        NotFound: no such room.
        NotMember: ``by`` or ``user_id`` is not in the room.
        Forbidden: see the module's rules.
    """
    async with database.transaction() as tx:
        await _authorize(tx, room_id, by, user_id, "unmute", target_must_be_member=True)
        await tx.execute(_SET_MUTE, room_id, user_id, False, None)


async def set_role(database: Queryable, room_id: int, by: int, user_id: int, role: Role) -> None:
    """The owner ``by`` makes ``user_id`` an ``admin`` or a plain ``member``.

    Raises:
        NotFound: no such room.
        NotMember: ``by`` or ``user_id`` is not in the room.
        Forbidden: ``by`` is not the owner, or see the module's rules.
        InvalidInput: ``role`` is not ``admin`` or ``member`` (field ``"role"``; ownership
            passes only when the owner leaves).
    """
    if role not in (Role.ADMIN, Role.MEMBER):
        raise InvalidInput("role", "invalid", "a role given is 'admin' or 'member'")
    async with database.transaction() as tx:
        actor, _ = await _authorize(
            tx, room_id, by, user_id, "set_role", target_must_be_member=True
        )
        if actor.role is not Role.OWNER:
            raise Forbidden("set_role", "only the owner changes roles")
        await tx.execute(_SET_ROLE, room_id, user_id, Role(role).value)


async def _authorize(
    tx: db.Transaction,
    room_id: int,
    by: int,
    user_id: int,
    action: str,
    *,
    target_must_be_member: bool,
) -> tuple[Member, Member | None]:
    room = await _lock_room(tx, room_id)
    if room.kind is RoomKind.DIRECT:
        raise Forbidden(action, "direct rooms are not moderated")
    actor = await require_member(tx, room_id, by)
    if not actor.moderates:
        raise Forbidden(action, "only owners and admins moderate")
    if by == user_id:
        raise Forbidden(action, "nobody moderates themselves")
    target = await member(tx, room_id, user_id)
    if target is None:
        if target_must_be_member:
            raise NotMember(room_id, user_id)
        if await tx.fetch_val(_USER_EXISTS, user_id) is None:
            raise NotFound("user", user_id)
        return actor, None
    if target.role is Role.OWNER:
        raise Forbidden(action, "the owner cannot be moderated")
    if target.role is Role.ADMIN and actor.role is not Role.OWNER:
        raise Forbidden(action, "only the owner acts on admins")
    return actor, target


def _check_duration(duration_s: object) -> float:
    if (
        isinstance(duration_s, bool)
        or not isinstance(duration_s, int | float)
        or not math.isfinite(duration_s)
        or duration_s <= 0
    ):
        raise InvalidInput(
            "duration_s", "invalid", f"a duration is a positive number of seconds: {duration_s!r}"
        )
    return float(duration_s)
