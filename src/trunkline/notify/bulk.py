"""Events stored together: the deliveries of many plain events decided at once and written
in a handful of statements.

``Notifier.send`` without a transaction of the caller's hands a *plain* event - no
idempotency key, a category without a digest or a fallback, no web push (whose targets are
the user's subscriptions) - to the notifier's batches (:class:`~trunkline.db.Batches`): the
events sent while a batch is being written go together in the next, in one transaction of a
few statements whatever their number: the events (the recipients are read at the same time,
on a connection of their own), the throttle's counts; then, on PostgreSQL, the deliveries'
ids (drawn from their sequence), the jobs naming them, and the deliveries naming their jobs,
with their history; on SQLite the deliveries, their history, the jobs, and the jobs' ids on
the deliveries. The decisions are the ones ``send`` makes one event at a time (preferences,
addresses, duplicates, the throttle, quiet hours), in the order the events came: an event
counts towards the throttle of the ones after it in the same batch as it would have, stored
before them.

If the batch's transaction fails, each of its events is stored again alone, so one bad
event fails only its own ``send``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from trunkline import db, jobs, otp

from .addresses import INAPP, WEBPUSH
from .deliveries import is_postgresql
from .preferences import Recipient, get_recipients, preference_allows
from .results import DeliveryResult, EventResult

if TYPE_CHECKING:
    from .notifier import Notifier

__all__ = ["Pending", "is_plain", "store"]

_INSERT_EVENTS = db.Query(
    "notify.events.insert_many",
    # $1: [[category, actor, payload, critical, send_at], ...]; ids come back in that order.
    postgresql="INSERT INTO notify_events (category, actor_id, payload, critical, send_at, "
    "created_at) SELECT x ->> 0, (x ->> 1)::bigint, x ->> 2, (x ->> 3)::boolean, "
    "(x ->> 4)::timestamptz, $2 FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(x, n) "
    "ORDER BY n RETURNING id",
    sqlite="INSERT INTO notify_events (category, actor_id, payload, critical, send_at, "
    "created_at) SELECT x.value ->> 0, x.value ->> 1, x.value ->> 2, x.value ->> 3, "
    "x.value ->> 4, $2 FROM json_each($1) AS x ORDER BY x.key RETURNING id",
)
_RECENT_EVENTS = db.Query(
    "notify.throttle.count_many",
    # As notifier._RECENT_EVENTS, for the users of $1 (a JSON array) at once.
    postgresql="SELECT user_id, count(DISTINCT event_id) FROM notify_deliveries "
    "WHERE user_id IN (SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb)) "
    "AND created_at > $2 AND status NOT IN ('suppressed', 'digested') GROUP BY user_id",
    sqlite="SELECT user_id, count(DISTINCT event_id) FROM notify_deliveries "
    "WHERE user_id IN (SELECT value FROM json_each($1)) "
    "AND created_at > $2 AND status NOT IN ('suppressed', 'digested') GROUP BY user_id",
)
_INSERT_DELIVERIES = db.Query(
    "notify.deliveries.insert_many",
    # SQLite: $1 [[event, user, channel, address, status, reason, scheduled_at, detail], ...];
    # the ids come back in that order (drawn in the order of the SELECT).
    "INSERT INTO notify_deliveries (event_id, user_id, channel, address, status, "
    "reason, scheduled_at, created_at, updated_at) SELECT x.value ->> 0, x.value ->> 1, "
    "x.value ->> 2, x.value ->> 3, x.value ->> 4, x.value ->> 5, x.value ->> 6, $2, $2 "
    "FROM json_each($1) AS x ORDER BY x.key RETURNING id",
)
_DRAW_IDS = db.Query(
    "notify.deliveries.draw_ids",
    # PostgreSQL: $1 delivery ids from the table's sequence, so that the jobs can name their
    # delivery and the deliveries their job when each is first written.
    "SELECT nextval(pg_get_serial_sequence('notify_deliveries', 'id')) "
    "FROM generate_series(1, $1::integer)",
)
_INSERT_DRAWN = db.Query(
    "notify.deliveries.insert_drawn",
    # PostgreSQL: $1 [[id, event, user, channel, address, status, reason, scheduled_at,
    # detail, job], ...], ids drawn by _DRAW_IDS; with the first history entries.
    "WITH v AS (SELECT x FROM jsonb_array_elements($1::jsonb) AS x), "
    "d AS (INSERT INTO notify_deliveries (id, event_id, user_id, channel, address, status, "
    "reason, scheduled_at, job_id, created_at, updated_at) SELECT (x ->> 0)::bigint, "
    "(x ->> 1)::bigint, (x ->> 2)::bigint, x ->> 3, x ->> 4, x ->> 5, x ->> 6, "
    "(x ->> 7)::timestamptz, (x ->> 9)::bigint, $2, $2 FROM v) "
    "INSERT INTO notify_delivery_history (delivery_id, status, at, detail) "
    "SELECT (x ->> 0)::bigint, x ->> 5, $2, x ->> 8 FROM v",
)
_ADD_HISTORIES = db.Query(
    "notify.deliveries.add_histories",
    # SQLite: $1 [[delivery, status, detail], ...].
    "INSERT INTO notify_delivery_history (delivery_id, status, at, detail) "
    "SELECT x.value ->> 0, x.value ->> 1, $2, x.value ->> 2 FROM json_each($1) AS x",
)
_SET_JOBS = db.Query(
    "notify.deliveries.jobs",
    # SQLite: $1 [[delivery, job], ...].
    "UPDATE notify_deliveries SET job_id = x.value ->> 1 FROM json_each($1) AS x "
    "WHERE notify_deliveries.id = x.value ->> 0",
)


@dataclass(frozen=True, slots=True)
class Pending:
    """An event on its way in: ``send``'s arguments, checked."""

    category: str
    users: list[int]
    actor: int | None
    payload: str  # JSON
    critical: bool
    send_at: datetime | None


def is_plain(notifier: Notifier, category: str) -> bool:
    """Whether events of ``category`` (with no idempotency key) can be stored in bulk."""
    spec = notifier.config.categories[category]
    return spec.digest is None and spec.fallback is None and WEBPUSH not in spec.channels


@dataclass(slots=True)
class _Row:
    """A delivery decided, not stored yet."""

    event: int  # the event's index in the batch
    user_id: int
    channel: str
    address: str | None
    status: str
    reason: str | None
    scheduled_at: datetime | None
    detail: str | None


async def store(notifier: Notifier, tx: db.Transaction, sends: list[Pending]) -> list[EventResult]:
    """Store ``sends`` (plain events) in ``tx``: their events, deliveries and jobs."""
    postgres = is_postgresql(tx)
    now = otp.current_node().clock.now()
    users = sorted({user for s in sends for user in s.users})
    # The recipients are read beside the events' insert, on a connection of their own: a
    # round trip less to wait for, and what they read is what the transaction would have
    # read (its statements each see what was committed when they start).
    inserted, recipients = await asyncio.gather(
        tx.fetch(
            _INSERT_EVENTS,
            json.dumps(
                [
                    [s.category, s.actor, s.payload, s.critical, _at(s.send_at, postgres)]
                    for s in sends
                ]
            ),
            now,
        ),
        get_recipients(notifier.database, users),
    )
    # RETURNING follows no promised order; ids are drawn in the order of the SELECT, so the
    # i-th smallest is the i-th row's (as for the jobs' insert_many).
    event_ids = sorted(row[0] for row in inserted)
    recent = await _recent(notifier, tx, users, now)
    rows = _decide(notifier, sends, recipients, recent, now)
    if postgres:
        ids, job_ids = await _write_drawn(notifier, tx, rows, event_ids, now)
    else:
        ids, job_ids = await _write(notifier, tx, rows, event_ids, now)
    results: list[list[DeliveryResult]] = [[] for _ in sends]
    for delivery_id, r in zip(ids, rows, strict=True):
        results[r.event].append(
            DeliveryResult(
                delivery_id,
                r.user_id,
                r.channel,
                r.status,
                r.reason,
                r.scheduled_at,
                job_ids.get(delivery_id),
            )
        )
    return [
        EventResult(event_id, s.category, tuple(out))
        for event_id, s, out in zip(event_ids, sends, results, strict=True)
    ]


async def _write(
    notifier: Notifier, tx: db.Transaction, rows: list[_Row], event_ids: list[int], now: datetime
) -> tuple[list[int], dict[int, int]]:
    """The deliveries, their first history entries and their jobs: the deliveries first,
    then the jobs naming them, then each delivery's job. Returns the deliveries' ids, in
    the order of ``rows``, and the jobs' ids by delivery."""
    if not rows:
        return [], {}
    stored = json.dumps([_columns(r, event_ids, False) for r in rows])
    ids = sorted(row[0] for row in await tx.fetch(_INSERT_DELIVERIES, stored, now))
    histories = [[i, r.status, r.detail] for i, r in zip(ids, rows, strict=True)]
    await tx.execute(_ADD_HISTORIES, json.dumps(histories), now)
    job_ids = await _enqueue(notifier, tx, ids, rows, now)
    if job_ids:
        await tx.execute(_SET_JOBS, json.dumps(list(job_ids.items())))
    return ids, job_ids


async def _write_drawn(
    notifier: Notifier, tx: db.Transaction, rows: list[_Row], event_ids: list[int], now: datetime
) -> tuple[list[int], dict[int, int]]:
    """:func:`_write` on PostgreSQL: the deliveries' ids drawn from their sequence first, so
    that the jobs, then the deliveries with their jobs, are each written once (no update of
    every delivery after its job)."""
    if not rows:
        return [], {}
    ids = sorted(row[0] for row in await tx.fetch(_DRAW_IDS, len(rows)))
    job_ids = await _enqueue(notifier, tx, ids, rows, now)
    stored = json.dumps(
        [[i, *_columns(r, event_ids, True), job_ids.get(i)] for i, r in zip(ids, rows, strict=True)]
    )
    await tx.execute(_INSERT_DRAWN, stored, now)
    return ids, job_ids


def _columns(r: _Row, event_ids: list[int], postgres: bool) -> list[object]:
    """A delivery as the inserts take it: event, user, channel, address, status, reason,
    scheduled_at, detail."""
    return [
        event_ids[r.event],
        r.user_id,
        r.channel,
        r.address,
        r.status,
        r.reason,
        _at(r.scheduled_at, postgres),
        r.detail,
    ]


async def _enqueue(
    notifier: Notifier, tx: db.Transaction, ids: list[int], rows: list[_Row], now: datetime
) -> dict[int, int]:
    """A job for each queued delivery (``ids`` beside their ``rows``): their ids, by
    delivery."""
    queued = [(i, r) for i, r in zip(ids, rows, strict=True) if r.status == "queued"]
    if not queued:
        return {}
    enqueued = await jobs.enqueue_many(
        tx,
        [
            notifier.worker.new(
                {"delivery_id": i},
                scheduled_at=r.scheduled_at
                if r.scheduled_at is not None and r.scheduled_at > now
                else None,
            )
            for i, r in queued
        ],
    )
    return {i: job.id for (i, _), job in zip(queued, enqueued, strict=True)}


async def _recent(
    notifier: Notifier, tx: db.Transaction, users: list[int], now: datetime
) -> dict[int, int]:
    """Each user's events within the throttle's window, before this batch."""
    throttle = notifier.config.throttle
    if throttle is None or not users:
        return {}
    since = now - timedelta(seconds=throttle.window_s)
    rows = await tx.fetch(_RECENT_EVENTS, json.dumps(users), since)
    return {int(user): int(count) for user, count in rows}


def _decide(
    notifier: Notifier,
    sends: list[Pending],
    recipients: dict[int, Recipient],
    recent: dict[int, int],
    now: datetime,
) -> list[_Row]:
    """Every delivery of ``sends``, as ``send`` decides them one event at a time."""
    config = notifier.config
    threshold = None if config.throttle is None else config.throttle.threshold
    rows: list[_Row] = []
    for index, s in enumerate(sends):
        spec = config.categories[s.category]
        due = max(now, s.send_at.astimezone(UTC)) if s.send_at is not None else now
        seen: set[int] = set()
        counted: set[int] = set()  # users this event reaches: it counts for their throttle
        for user_id in s.users:
            duplicate = user_id in seen
            seen.add(user_id)
            recipient = recipients[user_id]
            held_until: datetime | None = None
            quiet_checked = False
            for channel, default in spec.channels.items():
                if channel == INAPP:
                    targets: list[str | None] = [str(user_id)]
                else:
                    address = recipient.addresses.get(channel)
                    targets = [] if address is None else [address]
                reason: str | None = None
                if duplicate:
                    reason = "duplicate"
                elif not s.critical and not preference_allows(
                    recipient.preferences, s.category, channel, default
                ):
                    reason = "preference"
                elif not targets:
                    reason = "no_address"
                elif (
                    not s.critical and threshold is not None and recent.get(user_id, 0) >= threshold
                ):
                    reason = "throttle"
                if reason is not None:
                    rows.append(
                        _Row(
                            index,
                            user_id,
                            channel,
                            targets[0] if targets else None,
                            "suppressed",
                            reason,
                            None,
                            reason,
                        )
                    )
                    continue
                if not quiet_checked and not s.critical:
                    held_until = notifier.quiet_until_of(recipient.settings, due)
                quiet_checked = True
                at = held_until if held_until is not None else due
                detail = (
                    None if held_until is None else f"held by quiet hours until {at.isoformat()}"
                )
                for address in targets:
                    rows.append(
                        _Row(
                            index,
                            user_id,
                            channel,
                            address,
                            "queued",
                            None if held_until is None else "quiet_hours",
                            at,
                            detail,
                        )
                    )
                counted.add(user_id)
        for user_id in counted:
            recent[user_id] = recent.get(user_id, 0) + 1
    return rows


def _at(moment: datetime | None, postgres: bool) -> str | None:
    """A time as the statements above take it from JSON: ISO 8601 for PostgreSQL, SQLite's
    own ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in UTC (as the driver stores times) for SQLite."""
    if moment is None:
        return None
    if postgres:
        return moment.isoformat()
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
