"""The in-app inbox: a channel that stores each notification as an item of the user's
inbox, and the functions that list, count, read and archive them.

An item is unread until read, and listed until archived. Reading one also records
``read`` in its delivery's history (and as its status), which is what "send by email if
not read within N minutes" will look at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from trunkline import db, otp

from .addresses import INAPP
from .channel import Envelope, Rendered, Sent
from .deliveries import set_status
from .exceptions import InvalidNotification

__all__ = [
    "InboxChannel",
    "InboxItem",
    "InboxPage",
    "archive",
    "list_inbox",
    "mark_all_read",
    "mark_read",
    "unread_count",
]

InboxFilter = Literal["unread", "read", "archived", "all"]

_STORE = db.Query(
    "notify.inbox.store",
    "INSERT INTO notify_inbox (user_id, delivery_id, title, body, data, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id) DO NOTHING RETURNING id",
)
_BY_DELIVERY = db.Query(
    "notify.inbox.by_delivery", "SELECT id FROM notify_inbox WHERE delivery_id = $1"
)
_COLUMNS = "id, user_id, delivery_id, title, body, data, created_at, read_at, archived_at"
_WHERE: Mapping[str, str] = {
    "unread": "read_at IS NULL AND archived_at IS NULL",
    "read": "read_at IS NOT NULL AND archived_at IS NULL",
    "archived": "archived_at IS NOT NULL",
    "all": "archived_at IS NULL",
}
_LIST = {
    name: db.Query(
        f"notify.inbox.list_{name}",
        f"SELECT {_COLUMNS} FROM notify_inbox WHERE user_id = $1 AND id < $2 AND {where} "
        "ORDER BY id DESC LIMIT $3",
    )
    for name, where in _WHERE.items()
}
_UNREAD = db.Query(
    "notify.inbox.unread",
    f"SELECT count(*) FROM notify_inbox WHERE user_id = $1 AND {_WHERE['unread']}",
)
_READ = db.Query(
    "notify.inbox.read",
    "UPDATE notify_inbox SET read_at = $3 WHERE user_id = $1 AND id = $2 AND read_at IS NULL "
    "RETURNING delivery_id",
)
_READ_ALL = db.Query(
    "notify.inbox.read_all",
    "UPDATE notify_inbox SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL "
    "AND archived_at IS NULL RETURNING delivery_id",
)
_ARCHIVE = db.Query(
    "notify.inbox.archive",
    "UPDATE notify_inbox SET archived_at = $3 WHERE user_id = $1 AND id = $2 "
    "AND archived_at IS NULL",
)
_MAX_ID = 2**62


@dataclass(frozen=True)
class InboxItem:
    """One item of a user's inbox."""

    id: int
    user_id: int
    delivery_id: int | None
    title: str | None
    body: str
    data: Mapping[str, Any]
    created_at: datetime
    read_at: datetime | None
    archived_at: datetime | None


@dataclass(frozen=True)
class InboxPage:
    """A page of items, newest first; ``next_cursor`` gives the next page (``None``: the
    last)."""

    items: list[InboxItem]
    next_cursor: int | None


class InboxChannel:
    """The in-app channel: stores the notification in the recipient's inbox. A delivery
    stored once is not stored again (a job run twice)."""

    name = INAPP

    def __init__(self, database: db.Database) -> None:
        self.database = database

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        now = otp.current_node().clock.now()
        item_id = await self.database.fetch_val(
            _STORE,
            envelope.user_id,
            envelope.delivery_id,
            message.subject,
            message.text,
            json.dumps(dict(message.data)),
            now,
        )
        if item_id is None:
            item_id = await self.database.fetch_val(_BY_DELIVERY, envelope.delivery_id)
        return Sent(provider_id=str(item_id), delivered=True)


async def list_inbox(
    conn: db.Queryable,
    user_id: int,
    *,
    filter: InboxFilter = "all",
    cursor: int | None = None,
    limit: int = 50,
) -> InboxPage:
    """``user_id``'s items, newest first: ``unread``, ``read``, ``archived``, or ``all``
    that are not archived; ``cursor`` is a page's ``next_cursor``.

    Raises:
        InvalidNotification: an unknown filter, a bad cursor or limit.
    """
    if filter not in _LIST:
        raise InvalidNotification(f"filter must be one of {', '.join(_LIST)}, not {filter!r}")
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
        raise InvalidNotification(f"cursor must be a page's next_cursor, not {cursor!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidNotification(f"limit must be 1 to 500, not {limit!r}")
    rows = await conn.fetch(
        _LIST[filter], user_id, _MAX_ID if cursor is None else cursor, limit + 1
    )
    items = [_item(row) for row in rows[:limit]]
    return InboxPage(items, items[-1].id if len(rows) > limit else None)


async def unread_count(conn: db.Queryable, user_id: int) -> int:
    """How many of ``user_id``'s items are unread (and not archived)."""
    return int(await conn.fetch_val(_UNREAD, user_id) or 0)


async def mark_read(database: db.Database, user_id: int, item_id: int) -> bool:
    """Mark ``user_id``'s item ``item_id`` read; whether it was unread."""
    now = otp.current_node().clock.now()
    async with database.transaction() as tx:
        rows = await tx.fetch(_READ, user_id, item_id, now)
        await _record_read(tx, rows, now)
    return bool(rows)


async def mark_all_read(database: db.Database, user_id: int) -> int:
    """Mark every unread item of ``user_id`` read; how many were."""
    now = otp.current_node().clock.now()
    async with database.transaction() as tx:
        rows = await tx.fetch(_READ_ALL, user_id, now)
        await _record_read(tx, rows, now)
    return len(rows)


async def archive(conn: db.Queryable, user_id: int, item_id: int) -> bool:
    """Archive ``user_id``'s item ``item_id``; whether it was not archived yet."""
    now = otp.current_node().clock.now()
    return bool(await conn.execute(_ARCHIVE, user_id, item_id, now))


async def _record_read(tx: db.Transaction, rows: list[db.Row], now: datetime) -> None:
    for row in rows:
        if row["delivery_id"] is not None:
            await set_status(tx, row["delivery_id"], "read", now)


def _item(row: db.Row) -> InboxItem:
    return InboxItem(
        id=row["id"],
        user_id=row["user_id"],
        delivery_id=row["delivery_id"],
        title=row["title"],
        body=row["body"],
        data=json.loads(row["data"]),
        created_at=row["created_at"],
        read_at=row["read_at"],
        archived_at=row["archived_at"],
    )
