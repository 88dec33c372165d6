"""A user's own deliveries, newest first: what the notification system did for them."""

from __future__ import annotations

from trunkline import db

from .deliveries import Delivery, get_delivery
from .exceptions import InvalidNotification

__all__ = ["user_deliveries"]

_IDS = db.Query(
    "notify.deliveries.of_user",
    "SELECT id FROM notify_deliveries WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
)
_MAX_ID = 2**62


async def user_deliveries(
    conn: db.Queryable, user_id: int, *, cursor: int | None = None, limit: int = 50
) -> tuple[list[Delivery], int | None]:
    """A page of ``user_id``'s deliveries, newest first, and the cursor of the next page
    (``None``: the last).

    Raises:
        InvalidNotification: a bad cursor or limit.
    """
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
        raise InvalidNotification(f"cursor must be a page's next_cursor, not {cursor!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise InvalidNotification(f"limit must be 1 to 200, not {limit!r}")
    rows = await conn.fetch(_IDS, user_id, _MAX_ID if cursor is None else cursor, limit + 1)
    found = [await get_delivery(conn, row["id"]) for row in rows[:limit]]
    deliveries = [delivery for delivery in found if delivery is not None]
    return deliveries, deliveries[-1].id if len(rows) > limit and deliveries else None
