"""Digests: a category's events gathered per user into one summary per channel.

A category configured with ``Digest(window_s, key=None)`` does not deliver its events one
by one. For each recipient, the deliveries that pass the rules (preference, address,
throttle) are stored ``digested`` into the user's **open digest** for the event's key (the
category, or the category and a payload field's value), opened by the first of them, with
a ``notify.digest`` job scheduled when its window closes. Critical events bypass it.

The job **seals** the digest and makes its summary in one transaction: it marks the row
``sealed`` (only if it is still ``open``), fixes the events it covers by id, stores a
summary event, and queues one summary delivery per channel (per push subscription on web
push) with its ``notify.deliver`` job, held by quiet hours if the user is in them. Then the
summary is a delivery like any other (status history, retries, dead letters). So:

- a crash before the commit leaves the digest open and nothing made: the job's retry
  seals it then, with every event gathered so far;
- a crash after it leaves the digest sealed: a retry, or a second run, finds it sealed and
  does nothing; the summary deliveries were committed with the seal and are sent by their
  own jobs, which send a delivery once (see ``deliver.py``);
- an event arriving after the seal opens the next digest. On PostgreSQL, joining a digest
  and sealing it both lock its row (an ``UPDATE ... WHERE status = 'open'``): a send that
  joined first is committed before the seal reads the digest's deliveries; one that comes
  after finds it sealed and opens a new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from trunkline import db, jobs, otp

from .addresses import WEBPUSH
from .config import Digest
from .deliveries import add_history
from .results import DeliveryResult, EventResult
from .telemetry import emit_delivery

if TYPE_CHECKING:
    from .notifier import Notifier

__all__ = ["DIGEST_EVENT", "DIGEST_WORKER", "DigestWorker", "digest_event", "digest_key"]

DIGEST_WORKER = "notify.digest"
"""The name of the worker that seals digests."""

DIGEST_EVENT = ("trunkline", "notify", "digest")
"""The prefix of the digest events; the last element is ``opened``, ``sealed`` or ``sent``."""

_JOIN = db.Query(
    "notify.digests.join",
    # An update, not a select: it locks the open row, so a seal waits for this send.
    "UPDATE notify_digests SET status = status "
    "WHERE user_id = $1 AND digest_key = $2 AND status = 'open' RETURNING id",
)
_OPEN = db.Query(
    "notify.digests.open",
    "INSERT INTO notify_digests (user_id, category, digest_key, status, opened_at, closes_at) "
    "VALUES ($1, $2, $3, 'open', $4, $5) "
    "ON CONFLICT (user_id, digest_key) WHERE status = 'open' DO NOTHING RETURNING id",
)
_SET_JOB = db.Query("notify.digests.job", "UPDATE notify_digests SET job_id = $2 WHERE id = $1")
_INSERT_DIGESTED = db.Query(
    "notify.digests.insert_delivery",
    "INSERT INTO notify_deliveries (event_id, user_id, channel, address, status, digest_id, "
    "digest_key, created_at, updated_at) VALUES ($1, $2, $3, $4, 'digested', $5, $6, $7, $7) "
    "RETURNING id",
)
_SEAL = db.Query(
    "notify.digests.seal",
    "UPDATE notify_digests SET status = 'sealed', sealed_at = $2 "
    "WHERE id = $1 AND status = 'open' RETURNING user_id, category, digest_key, opened_at",
)
_GATHERED = db.Query(
    "notify.digests.gathered",
    "SELECT id, event_id, channel, address FROM notify_deliveries WHERE digest_id = $1 ORDER BY id",
)
_INSERT_SUMMARY_EVENT = db.Query(
    "notify.digests.summary_event",
    "INSERT INTO notify_events (category, actor_id, payload, critical, created_at) "
    "VALUES ($1, NULL, $2, FALSE, $3) RETURNING id",
)
_SET_SEALED = db.Query(
    "notify.digests.sealed",
    "UPDATE notify_digests SET event_ids = $2, summary_event_id = $3 WHERE id = $1",
)
_SET_RESULT = db.Query(
    "notify.digests.result", "UPDATE notify_events SET result = $2 WHERE id = $1"
)
_EVENTS = db.Query(
    "notify.digests.events",
    postgresql="SELECT id, actor_id, payload, created_at FROM notify_events "
    "WHERE id = ANY($1::bigint[]) ORDER BY id",
    sqlite="SELECT id, actor_id, payload, created_at FROM notify_events "
    "WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
)


def digest_event(name: str) -> tuple[str, ...]:
    """The digest event ``name`` (``opened``, ``sealed``, ``sent``)."""
    return (*DIGEST_EVENT, name)


def emit_digest(name: str, measurements: Mapping[str, Any], **metadata: Any) -> None:
    """Execute the digest event ``name``."""
    event = digest_event(name)
    if otp.telemetry.has_handlers(event):
        otp.telemetry.execute(event, dict(measurements), metadata)


def digest_key(category: str, digest: Digest, payload: Mapping[str, Any]) -> str:
    """The key events of ``category`` are gathered under: the category, or the category
    and the JSON of the payload's ``digest.key`` field (``null`` when it lacks it)."""
    if digest.key is None:
        return category
    return f"{category}:{json.dumps(payload.get(digest.key), sort_keys=True)}"


async def gather(
    tx: db.Transaction,
    notifier: Notifier,
    *,
    user_id: int,
    category: str,
    key: str,
    now: datetime,
    opened: list[dict[str, Any]],
) -> int:
    """The id of ``user_id``'s open digest for ``key``, opened (with its job) if none is.
    A digest opened is appended to ``opened`` (its telemetry waits for the commit)."""
    digest = notifier.config.categories[category].digest
    assert digest is not None
    for _ in range(3):
        digest_id = await tx.fetch_val(_JOIN, user_id, key)
        if digest_id is not None:
            return int(digest_id)
        closes_at = now + timedelta(seconds=digest.window_s)
        digest_id = await tx.fetch_val(_OPEN, user_id, category, key, now, closes_at)
        if digest_id is not None:
            job = await jobs.enqueue(
                tx, notifier.digest_worker, {"digest_id": int(digest_id)}, scheduled_at=closes_at
            )
            await tx.execute(_SET_JOB, digest_id, job.id)
            opened.append(
                {
                    "digest_id": int(digest_id),
                    "user_id": user_id,
                    "category": category,
                    "digest_key": key,
                    "closes_at": closes_at,
                }
            )
            return int(digest_id)
        # Another send opened it meanwhile (and committed): join that one.
    raise RuntimeError(f"could not open or join the digest {key!r} of user {user_id}")


async def store_digested(
    tx: db.Transaction,
    *,
    event_id: int,
    user_id: int,
    channel: str,
    address: str | None,
    digest_id: int,
    key: str,
    now: datetime,
) -> DeliveryResult:
    """Store a delivery ``digested`` into ``digest_id``."""
    delivery_id = int(
        await tx.fetch_val(
            _INSERT_DIGESTED, event_id, user_id, channel, address, digest_id, key, now
        )
    )
    await add_history(tx, delivery_id, "digested", now, f"gathered in digest {digest_id}")
    return DeliveryResult(delivery_id, user_id, channel, "digested", None)


async def digest_events(database: db.Database, event_ids: list[int]) -> list[dict[str, Any]]:
    """The events a sealed digest covers, oldest first, as its templates see them."""
    ids: Any = event_ids if database.dialect == "postgresql" else json.dumps(event_ids)
    return [
        {
            "id": row["id"],
            "actor_id": row["actor_id"],
            "created_at": row["created_at"].isoformat(),
            "payload": json.loads(row["payload"]),
        }
        for row in await database.fetch(_EVENTS, ids)
    ]


class DigestWorker(jobs.Worker):
    """The ``notify.digest`` worker of a :class:`~trunkline.notify.Notifier`: seals a
    digest and queues its summary deliveries, once."""

    name = DIGEST_WORKER
    queue = "notify"

    def __init__(self, notifier: Notifier, **options: Any) -> None:
        super().__init__(**options)
        self.notifier = notifier

    async def perform(self, job: jobs.Job) -> jobs.Discard | None:
        digest_id = job.args.get("digest_id") if isinstance(job.args, dict) else None
        if isinstance(digest_id, bool) or not isinstance(digest_id, int):
            return jobs.Discard(f"malformed arguments: {job.args!r}")
        await seal(self.notifier, digest_id)
        return None


async def seal(notifier: Notifier, digest_id: int) -> EventResult | None:
    """Seal ``digest_id`` and queue its summary, in one transaction; ``None`` if it was
    sealed already (or does not exist)."""
    now = otp.current_node().clock.now()
    async with notifier.database.transaction() as tx:
        row = await tx.fetch_one(_SEAL, digest_id, now)
        if row is None:
            return None
        user_id, category = int(row["user_id"]), str(row["category"])
        gathered = await tx.fetch(_GATHERED, digest_id)
        event_ids = sorted({int(g["event_id"]) for g in gathered})
        # One summary per channel; on web push, one per subscription (the latest address
        # of the others: an email changed within the window gets the summary).
        targets: dict[tuple[str, str | None], str | None] = {}
        for g in gathered:
            channel, address = str(g["channel"]), g["address"]
            targets[(channel, address if channel == WEBPUSH else None)] = address
        payload = {"digest_id": digest_id, "count": len(event_ids)}
        summary_id = int(
            await tx.fetch_val(_INSERT_SUMMARY_EVENT, category, json.dumps(payload), now)
        )
        await tx.execute(_SET_SEALED, digest_id, json.dumps(event_ids), summary_id)
        held_until = await notifier.quiet_until(tx, user_id, now)
        deliveries = [
            await notifier._queue(tx, summary_id, user_id, channel, address, now, held_until, now)
            for (channel, _), address in targets.items()
        ]
        result = EventResult(summary_id, category, tuple(deliveries))
        await tx.execute(_SET_RESULT, summary_id, json.dumps(result.to_json()))
    emit_digest(
        "sealed",
        {"events": len(event_ids), "deliveries": len(deliveries)},
        digest_id=digest_id,
        user_id=user_id,
        category=category,
        digest_key=row["digest_key"],
        summary_event_id=summary_id,
    )
    for delivery in deliveries:
        emit_delivery(
            delivery.status,
            delivery_id=delivery.delivery_id,
            event_id=summary_id,
            user_id=user_id,
            category=category,
            channel=delivery.channel,
            reason=delivery.reason,
        )
    return result
