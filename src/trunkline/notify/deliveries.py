"""Delivery records: one row per recipient x channel of an event, and its status history.

A delivery is ``queued`` (its job waits, maybe held until quiet hours end) or
``suppressed`` (with the reason: ``preference``, ``throttle``, ``no_address``,
``duplicate``), then ``sent`` or ``delivered`` (the channel said so), ``failed``, and
``read`` (in-app items the user read). Every change appends to its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trunkline import db

__all__ = ["Delivery", "HistoryEntry", "delivery_history", "get_delivery", "list_deliveries"]

_COLUMNS = (
    "d.id, d.event_id, d.user_id, d.channel, d.address, d.status, d.reason, d.scheduled_at, "
    "d.job_id, d.provider_id, d.attempts, d.created_at, d.updated_at, e.category"
)
_GET = db.Query(
    "notify.deliveries.get",
    f"SELECT {_COLUMNS} FROM notify_deliveries AS d "
    "JOIN notify_events AS e ON e.id = d.event_id WHERE d.id = $1",
)
_OF_EVENT = db.Query(
    "notify.deliveries.of_event",
    f"SELECT {_COLUMNS} FROM notify_deliveries AS d "
    "JOIN notify_events AS e ON e.id = d.event_id WHERE d.event_id = $1 ORDER BY d.id",
)
_OF_USER = db.Query(
    "notify.deliveries.of_user",
    f"SELECT {_COLUMNS} FROM notify_deliveries AS d "
    "JOIN notify_events AS e ON e.id = d.event_id "
    "WHERE d.user_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
)
_HISTORY = db.Query(
    "notify.deliveries.history",
    "SELECT status, at, detail FROM notify_delivery_history WHERE delivery_id = $1 ORDER BY id",
)
_ADD_HISTORY = db.Query(
    "notify.deliveries.add_history",
    "INSERT INTO notify_delivery_history (delivery_id, status, at, detail) VALUES ($1, $2, $3, $4)",
)
_INSERT = db.Query(
    "notify.deliveries.insert",
    "INSERT INTO notify_deliveries (event_id, user_id, channel, address, status, reason, "
    "scheduled_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) "
    "RETURNING id",
)
_INSERT_WITH_HISTORY = db.Query(
    "notify.deliveries.insert",
    # PostgreSQL only: the delivery and its first history entry in one round trip.
    "WITH d AS (INSERT INTO notify_deliveries (event_id, user_id, channel, address, status, "
    "reason, scheduled_at, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id), "
    "h AS (INSERT INTO notify_delivery_history (delivery_id, status, at, detail) "
    "SELECT id, $5, $8, $9 FROM d) SELECT id FROM d",
)
_SET_STATUS = db.Query(
    "notify.deliveries.set_status",
    "UPDATE notify_deliveries SET status = $2, updated_at = $3 WHERE id = $1",
)


@dataclass(frozen=True)
class Delivery:
    """One delivery, as stored."""

    id: int
    event_id: int
    user_id: int
    category: str
    channel: str
    address: str | None
    status: str
    reason: str | None
    scheduled_at: datetime | None
    job_id: int | None
    provider_id: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: db.Row) -> Delivery:
        """A delivery from a row of ``notify_deliveries`` (its columns by name)."""
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            user_id=row["user_id"],
            category=row["category"],
            channel=row["channel"],
            address=row["address"],
            status=row["status"],
            reason=row["reason"],
            scheduled_at=row["scheduled_at"],
            job_id=row["job_id"],
            provider_id=row["provider_id"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class HistoryEntry:
    """A status a delivery reached, when, and a detail (an error, a hold)."""

    status: str
    at: datetime
    detail: str | None = None


async def get_delivery(conn: db.Queryable, delivery_id: int) -> Delivery | None:
    """The delivery ``delivery_id``, or ``None``."""
    row = await conn.fetch_one(_GET, delivery_id)
    return None if row is None else Delivery.from_row(row)


async def list_deliveries(conn: db.Queryable, event_id: int) -> list[Delivery]:
    """The deliveries of the event ``event_id``, in the order they were made."""
    return [Delivery.from_row(row) for row in await conn.fetch(_OF_EVENT, event_id)]


async def delivery_history(conn: db.Queryable, delivery_id: int) -> list[HistoryEntry]:
    """The statuses of ``delivery_id``, oldest first."""
    return [
        HistoryEntry(row["status"], row["at"], row["detail"])
        for row in await conn.fetch(_HISTORY, delivery_id)
    ]


async def add_history(
    conn: db.Queryable, delivery_id: int, status: str, at: datetime, detail: str | None = None
) -> None:
    """Append ``status`` to the history of ``delivery_id``."""
    await conn.execute(_ADD_HISTORY, delivery_id, status, at, detail)


async def deliveries_of_user(
    conn: db.Queryable, user_id: int, before: int, limit: int
) -> list[Delivery]:
    """``user_id``'s deliveries with an id below ``before``, newest first, at most ``limit``
    (one query)."""
    return [Delivery.from_row(row) for row in await conn.fetch(_OF_USER, user_id, before, limit)]


async def insert_delivery(
    conn: db.Queryable,
    event_id: int,
    user_id: int,
    channel: str,
    address: str | None,
    status: str,
    reason: str | None,
    scheduled_at: datetime | None,
    now: datetime,
    detail: str | None,
) -> int:
    """Store a delivery reaching ``status`` (its first history entry, with ``detail``);
    its id."""
    args = (event_id, user_id, channel, address, status, reason, scheduled_at, now)
    if is_postgresql(conn):
        return int(await conn.fetch_val(_INSERT_WITH_HISTORY, *args, detail))
    delivery_id = int(await conn.fetch_val(_INSERT, *args))
    await add_history(conn, delivery_id, status, now, detail)
    return delivery_id


def is_postgresql(conn: db.Queryable) -> bool:
    """Whether ``conn`` (a database or a transaction) is on PostgreSQL."""
    return isinstance(conn, db.Database | db.Transaction) and conn.dialect == "postgresql"


async def set_status(
    conn: db.Queryable, delivery_id: int, status: str, at: datetime, detail: str | None = None
) -> None:
    """Set the status of ``delivery_id`` and append it to its history."""
    await conn.execute(_SET_STATUS, delivery_id, status, at)
    await add_history(conn, delivery_id, status, at, detail)
