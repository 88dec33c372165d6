"""A user's own deliveries, newest first: what the notification system did for them."""

from __future__ import annotations

from trunkline import db

from .deliveries import Delivery, deliveries_of_user
from .exceptions import InvalidNotification

__all__ = ["user_deliveries"]

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
    found = await deliveries_of_user(
        conn, user_id, _MAX_ID if cursor is None else cursor, limit + 1
    )
    deliveries = found[:limit]
    return deliveries, deliveries[-1].id if len(found) > limit else None
