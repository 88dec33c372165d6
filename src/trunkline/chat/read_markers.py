"""Read markers and unread counts.

Each member has a read marker per room: the highest ``seq`` they have read
(``chat_room_members.last_read_seq``, 0 at first). It only moves forward, and never past the
room's latest message (a marker set ahead would hide the messages still to come).

A room's unread count is the number of messages after the marker that are neither the
member's own nor deleted. :func:`unread_counts` gives them for all of a user's rooms in one
query, which reads the membership index by user and then each room's ``(room_id, seq)`` range
past the marker.
"""

from __future__ import annotations

from trunkline import db

from .exceptions import InvalidInput
from .rooms import Queryable, require_member

__all__ = ["mark_read", "unread_counts"]

_LATEST = "(SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE room_id = $1)"
_MARK = db.Query(
    "chat.read_markers.mark",
    postgresql=f"UPDATE chat_room_members SET last_read_seq = LEAST($3, {_LATEST}) "
    f"WHERE room_id = $1 AND user_id = $2 AND last_read_seq < LEAST($3, {_LATEST}) "
    "RETURNING last_read_seq",
    sqlite=f"UPDATE chat_room_members SET last_read_seq = min($3, {_LATEST}) "
    f"WHERE room_id = $1 AND user_id = $2 AND last_read_seq < min($3, {_LATEST}) "
    "RETURNING last_read_seq",
)
_UNREAD_COUNTS = db.Query(
    "chat.read_markers.unread_counts",
    "SELECT r.room_id, COUNT(m.id) FROM chat_room_members r "
    "LEFT JOIN chat_messages m ON m.room_id = r.room_id AND m.seq > r.last_read_seq "
    "AND m.sender_id <> r.user_id AND m.deleted_at IS NULL "
    "WHERE r.user_id = $1 GROUP BY r.room_id",
)


async def mark_read(database: Queryable, room_id: int, user_id: int, seq: int) -> int:
    """``user_id`` has read the room up to ``seq``.

    Returns:
        The marker now: ``seq``, or the room's latest number if ``seq`` is past it, or the
        marker as it was if that was further already.

    Raises:
        InvalidInput: ``seq`` is not a non-negative integer (field ``"seq"``).
        NotFound: no such room.
        NotMember: the user is not in the room.
    """
    if type(seq) is not int or seq < 0:
        raise InvalidInput("seq", "wrong_type", f"a sequence number is an integer >= 0: {seq!r}")
    async with database.transaction() as tx:
        marker = await require_member(tx, room_id, user_id)
        moved: int | None = await tx.fetch_val(_MARK, room_id, user_id, seq)
    return marker.last_read_seq if moved is None else moved


async def unread_counts(database: Queryable, user_id: int) -> dict[int, int]:
    """``{room_id: unread messages}`` for every room ``user_id`` is in (0 included), in one
    query."""
    return {row[0]: row[1] for row in await database.fetch(_UNREAD_COUNTS, user_id)}
