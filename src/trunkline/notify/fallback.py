"""Fallback: "in-app first; if not read within N seconds, send by another channel".

A category configured with ``Fallback(channel, after_s)`` makes its in-app delivery at
once, and its ``channel`` delivery **held**: ``queued``, reason ``fallback``, with
``after_delivery_id`` (the in-app delivery) and ``after_unread_s``, its job scheduled
``after_s`` later (or when the user's quiet hours end, if that is later). Preferences, the
address, the throttle and quiet hours are decided then, when it is made, like any other
delivery's: a user who turned the channel off gets no fallback.

When its job runs, :func:`seen` looks at the in-app delivery: read (its status ``read``)
or its item archived, and the fallback is ``suppressed``, reason ``read``; else it is sent
as usual. If the in-app delivery was not made (the user turned the inbox off), there is
nothing to wait for: the channel's delivery goes at once, an ordinary one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trunkline import db, otp

from .deliveries import add_history
from .telemetry import emit_delivery

__all__ = ["FALLBACK_EVENT", "fallback_event", "seen", "suppress_read"]

FALLBACK_EVENT = ("trunkline", "notify", "fallback")
"""The prefix of the fallback events; the last element is ``suppressed`` or ``sent``."""

_SEEN = db.Query(
    "notify.fallback.seen",
    "SELECT d.status, i.read_at, i.archived_at FROM notify_deliveries AS d "
    "LEFT JOIN notify_inbox AS i ON i.delivery_id = d.id WHERE d.id = $1",
)
_SUPPRESS = db.Query(
    "notify.fallback.suppress",
    "UPDATE notify_deliveries SET status = 'suppressed', reason = 'read', updated_at = $2 "
    "WHERE id = $1 AND status = 'queued'",
)
_SET_AFTER = db.Query(
    "notify.fallback.set_after",
    "UPDATE notify_deliveries SET after_delivery_id = $2, after_unread_s = $3 WHERE id = $1",
)


def fallback_event(name: str) -> tuple[str, ...]:
    """The fallback event ``name`` (``suppressed``, ``sent``)."""
    return (*FALLBACK_EVENT, name)


def emit_fallback(name: str, **metadata: Any) -> None:
    """Execute the fallback event ``name``."""
    event = fallback_event(name)
    if otp.telemetry.has_handlers(event):
        otp.telemetry.execute(event, {"count": 1}, metadata)


async def set_after(
    tx: db.Transaction, delivery_id: int, after_delivery_id: int, after_unread_s: float
) -> None:
    """Make ``delivery_id`` the fallback of ``after_delivery_id``."""
    await tx.execute(_SET_AFTER, delivery_id, after_delivery_id, after_unread_s)


async def seen(conn: db.Queryable, inapp_delivery_id: int) -> str | None:
    """How the user saw the in-app delivery: ``"read"``, ``"archived"``, or ``None``."""
    row = await conn.fetch_one(_SEEN, inapp_delivery_id)
    if row is None:
        return None
    if row["status"] == "read" or row["read_at"] is not None:
        return "read"
    if row["archived_at"] is not None:
        return "archived"
    return None


async def suppress_read(
    database: db.Database, meta: Mapping[str, Any], inapp_delivery_id: int, how: str
) -> bool:
    """Suppress the fallback delivery of ``meta`` (reason ``read``): the user saw the in-app
    one; whether it was still queued."""
    now: datetime = otp.current_node().clock.now()
    detail = f"in-app delivery {inapp_delivery_id} was {how}"
    async with database.transaction() as tx:
        changed = await tx.execute(_SUPPRESS, meta["delivery_id"], now)
        if changed:
            await add_history(tx, meta["delivery_id"], "suppressed", now, f"read: {detail}")
    if changed:
        emit_delivery("suppressed", **meta, reason="read")
        emit_fallback("suppressed", **meta, after_delivery_id=inapp_delivery_id, seen=how)
    return bool(changed)
