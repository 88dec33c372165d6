"""The delivery job: ``notify.deliver``, one job per queued delivery.

Its attempt loads the delivery, renders it in the user's locale, asks the channel's
circuit breaker (an open one snoozes the job: not an attempt), calls the channel, and
records what came of it:

- it returns ``Sent``: the delivery is ``sent`` (``delivered`` if the channel says so),
  with its ``provider_id``; the job completes;
- it raises ``TransientFailure`` (or anything unexpected): a ``failed`` entry in the
  history (retrying) and the job is retried with backoff; on the last attempt the delivery
  is ``failed`` and the job discarded (a dead letter);
- it raises ``PermanentFailure``: ``failed``, and the job is discarded, no retry;
- it raises ``AddressGone``: the same, and the address (or push subscription) is removed.

A fallback delivery (``after_delivery_id``) whose in-app delivery was read or archived
meanwhile is ``suppressed`` (reason ``read``) instead of sent. A digest's summary delivery
renders the ``<category>/digest`` templates with the events the digest sealed.

A delivery no longer ``queued`` (sent by an earlier run of the job that crashed before it
completed, say) is not sent again. Between the send and its record a crash may still send
twice: the envelope's ``delivery_id`` is there for providers that deduplicate.

The job takes two statements, each shared with the jobs running beside it
(:class:`~trunkline.db.Batches`, one per notifier): one counts the attempt of a ``queued``
delivery and reads what the send needs (the delivery, its event, its digest, the user's
locale), one records a send with its history (on SQLite, two in a transaction). With a
hundred jobs in flight that is a statement and a commit per batch, not per delivery; a
job waits for its batch's commit before it goes on, so nothing is recorded later than it
would be alone. A job that ends without calling the channel (an open breaker, a fallback
already read, a failure before the send) takes its count back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trunkline import db, jobs, otp

from .addresses import (
    INAPP,
    WEBPUSH,
    get_push_subscription,
    remove_address,
    remove_push_subscription,
)
from .channel import (
    AddressGone,
    Channel,
    Envelope,
    PermanentFailure,
    Rendered,
    Sent,
    TransientFailure,
)
from .deliveries import add_history, is_postgresql, set_status
from .digests import digest_events, emit_digest
from .fallback import emit_fallback, seen, suppress_read
from .telemetry import emit_delivery
from .templates import digest_templates
from .unsubscribe import EMAIL, unsubscribe_url

if TYPE_CHECKING:
    from .notifier import Breaker, Notifier

__all__ = ["WORKER", "DeliverWorker", "DeliveryBatches"]

WORKER = "notify.deliver"
"""The name of the delivery worker."""

_EXISTS = db.Query("notify.deliver.exists", "SELECT 1 FROM notify_deliveries WHERE id = $1")
_TAKE = db.Query(
    "notify.deliver.take",
    # Counts the attempt of queued deliveries and reads what their sends need, in one
    # statement: $1 the ids (an array; a JSON array on SQLite).
    postgresql="WITH d AS (UPDATE notify_deliveries SET attempts = attempts + 1, updated_at = $2 "
    "WHERE id = ANY($1::bigint[]) AND status = 'queued' "
    "RETURNING id, event_id, user_id, channel, address, status, after_delivery_id) "
    "SELECT d.*, e.category, e.actor_id, e.payload, e.created_at, g.id AS digest_id, "
    "g.event_ids, s.locale FROM d JOIN notify_events AS e ON e.id = d.event_id "
    "LEFT JOIN notify_digests AS g ON g.summary_event_id = d.event_id "
    "LEFT JOIN notify_user_settings AS s ON s.user_id = d.user_id",
    # SQLite has no UPDATE in a WITH, but subqueries in RETURNING (which lose the column
    # types: created_at comes back as text).
    sqlite="UPDATE notify_deliveries SET attempts = attempts + 1, updated_at = $2 "
    "WHERE id IN (SELECT value FROM json_each($1)) AND status = 'queued' "
    "RETURNING id, event_id, user_id, channel, address, status, after_delivery_id, "
    + ", ".join(
        f"(SELECT {column} FROM {table} WHERE {key} = notify_deliveries.{ref}) AS {name}"
        for column, table, key, ref, name in (
            ("category", "notify_events", "id", "event_id", "category"),
            ("actor_id", "notify_events", "id", "event_id", "actor_id"),
            ("payload", "notify_events", "id", "event_id", "payload"),
            ("created_at", "notify_events", "id", "event_id", "created_at"),
            ("id", "notify_digests", "summary_event_id", "event_id", "digest_id"),
            ("event_ids", "notify_digests", "summary_event_id", "event_id", "event_ids"),
            ("locale", "notify_user_settings", "user_id", "user_id", "locale"),
        )
    ),
)
_UNCOUNT = db.Query(
    "notify.deliver.uncount",
    "UPDATE notify_deliveries SET attempts = attempts - 1 WHERE id = $1",
)
# Sends recorded: $1 the deliveries as [[id, status, provider_id], ...], $2 the time.
_SENT = db.Query(
    "notify.deliver.sent",
    # PostgreSQL: the outcomes and their history entries in one round trip.
    postgresql="WITH v AS (SELECT (x ->> 0)::bigint AS id, x ->> 1 AS status, "
    "x ->> 2 AS provider_id FROM jsonb_array_elements($1::jsonb) AS x), "
    "d AS (UPDATE notify_deliveries AS n SET status = v.status, provider_id = v.provider_id, "
    "updated_at = $2 FROM v WHERE n.id = v.id RETURNING n.id, v.status) "
    "INSERT INTO notify_delivery_history (delivery_id, status, at, detail) "
    "SELECT id, status, $2, NULL FROM d",
    sqlite="UPDATE notify_deliveries SET status = v.value ->> 1, provider_id = v.value ->> 2, "
    "updated_at = $2 FROM json_each($1) AS v WHERE notify_deliveries.id = v.value ->> 0",
)
_SENT_HISTORY = db.Query(
    "notify.deliver.sent_history",
    # SQLite: the history entries of _SENT, in its transaction.
    "INSERT INTO notify_delivery_history (delivery_id, status, at, detail) "
    "SELECT v.value ->> 0, v.value ->> 1, $2, NULL FROM json_each($1) AS v",
)


class DeliveryBatches:
    """The statements delivery jobs share (see the module documentation): one per
    notifier."""

    __slots__ = ("database", "records", "takes")

    def __init__(self, database: db.Database) -> None:
        self.database = database
        self.takes: db.Batches[int, db.Row | None] = db.Batches(self._take)
        self.records: db.Batches[tuple[int, str, str | None], None] = db.Batches(self._record)

    async def _take(self, ids: list[int]) -> list[db.Row | None]:
        database = self.database
        now = otp.current_node().clock.now()
        key: Any = ids if is_postgresql(database) else json.dumps(ids)
        rows = {row["id"]: row for row in await database.fetch(_TAKE, key, now)}
        return [rows.get(delivery_id) for delivery_id in ids]

    async def _record(self, sent: list[tuple[int, str, str | None]]) -> list[None]:
        database = self.database
        now = otp.current_node().clock.now()
        rows = json.dumps(sent)
        if is_postgresql(database):
            await database.execute(_SENT, rows, now)
        else:
            async with database.transaction() as tx:
                await tx.execute(_SENT, rows, now)
                await tx.execute(_SENT_HISTORY, rows, now)
        return [None] * len(sent)


class DeliverWorker(jobs.Worker):
    """The ``notify.deliver`` worker of a :class:`~trunkline.notify.Notifier`."""

    name = WORKER
    queue = "notify"

    def __init__(self, notifier: Notifier, **options: Any) -> None:
        super().__init__(**options)
        self.notifier = notifier

    async def perform(self, job: jobs.Job) -> jobs.Snooze | jobs.Discard | None:
        delivery_id = job.args.get("delivery_id") if isinstance(job.args, dict) else None
        if isinstance(delivery_id, bool) or not isinstance(delivery_id, int):
            return jobs.Discard(f"malformed arguments: {job.args!r}")
        return await _deliver(self.notifier, job, delivery_id)


async def _deliver(
    notifier: Notifier, job: jobs.Job, delivery_id: int
) -> jobs.Snooze | jobs.Discard | None:
    database = notifier.database
    clock = otp.current_node().clock
    # Counted as an attempt from here (only a queued delivery is taken).
    row = await notifier.batches.takes.call(delivery_id)
    if row is None:
        if await database.fetch_one(_EXISTS, delivery_id) is None:
            return jobs.Discard(f"delivery {delivery_id} does not exist")
        return None  # no longer queued: done already, not sent twice
    ready = await _prepare(notifier, delivery_id, row)
    if not isinstance(ready, _Ready):  # the channel was not called: not an attempt
        await database.execute(_UNCOUNT, delivery_id)
        return ready
    meta, channel, breaker = ready.meta, ready.channel, ready.breaker
    after = row["after_delivery_id"]
    try:
        sent = await channel.send(ready.envelope, ready.message)
    except AddressGone as error:
        if breaker is not None:
            breaker.record_success()  # the provider answered: it is up
        if row["channel"] == WEBPUSH:
            await remove_push_subscription(database, row["address"])
        else:
            await remove_address(database, row["user_id"], row["channel"], row["address"])
        return await _fail(database, meta, f"address gone: {error.message}")
    except PermanentFailure as error:
        if breaker is not None:
            breaker.record_success()  # the provider answered: it is up, the message is bad
        return await _fail(database, meta, error.message)
    except Exception as error:
        if breaker is not None and isinstance(error, TransientFailure):
            breaker.record_failure()
        detail = f"attempt {job.attempt} of {job.max_attempts}: {error}"
        if job.attempt >= job.max_attempts:
            await _fail(database, meta, detail)
        else:
            await add_history(database, delivery_id, "failed", clock.now(), f"{detail}; retrying")
            emit_delivery("retrying", **meta, reason=str(error))
        raise
    if breaker is not None:
        breaker.record_success()
    await _record_sent(notifier, meta, sent)
    if row["digest_id"] is not None:
        emit_digest("sent", {"events": ready.count}, **meta, digest_id=row["digest_id"])
    if after is not None:
        emit_fallback("sent", **meta, after_delivery_id=after)
    return None


async def _prepare(
    notifier: Notifier, delivery_id: int, row: db.Row
) -> _Ready | jobs.Snooze | jobs.Discard | None:
    """Everything before the send: checks, address, rendering; or how the job ends."""
    database = notifier.database
    meta = {
        "delivery_id": delivery_id,
        "event_id": row["event_id"],
        "user_id": row["user_id"],
        "category": row["category"],
        "channel": row["channel"],
    }
    after = row["after_delivery_id"]
    if after is not None:
        how = await seen(database, after)
        if how is not None:
            await suppress_read(database, meta, after, how)
            return None
    channel = notifier.channels.get(row["channel"])
    if channel is None:
        return await _fail(database, meta, f"no channel named {row['channel']!r} on this node")
    breaker = notifier.breakers.get(row["channel"])
    if breaker is not None and not breaker.allow():
        return jobs.Snooze(max(0.0, float(breaker.retry_after_s())))
    address = row["address"]
    if row["channel"] == INAPP:
        address = str(row["user_id"])
    elif row["channel"] == WEBPUSH:
        subscription = await get_push_subscription(database, row["address"] or "")
        if subscription is None:
            return await _fail(database, meta, "the push subscription is gone")
        address = subscription.to_json()
    if address is None:
        return await _fail(database, meta, "no address")
    headers: dict[str, str] = {}
    context: dict[str, Any] = {
        "payload": json.loads(row["payload"]),
        "event": {
            "id": row["event_id"],
            "category": row["category"],
            "actor_id": row["actor_id"],
            "created_at": _timestamp(row["created_at"]).isoformat(),
        },
        "user_id": row["user_id"],
        "unsubscribe_url": None,
    }
    if row["channel"] == EMAIL:
        url = unsubscribe_url(notifier.config, row["user_id"], row["category"])
        context["unsubscribe_url"] = url
        headers["List-Unsubscribe"] = f"<{url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    context["data"] = {
        "event_id": row["event_id"],
        "delivery_id": delivery_id,
        "category": row["category"],
        "payload": context["payload"],
    }
    templates = row["category"]
    if row["digest_id"] is not None:
        templates = digest_templates(row["category"])
        context["events"] = await digest_events(database, json.loads(row["event_ids"]))
        context["count"] = len(context["events"])
    try:
        message = notifier.templates.render(
            templates,
            row["channel"],
            row["locale"] or notifier.config.default_locale,
            context,
        )
    except Exception as error:  # a template's own failure: it would fail the same again
        return await _fail(database, meta, f"the template failed: {error!r}")
    envelope = Envelope(
        delivery_id, row["event_id"], row["user_id"], row["category"], address, headers
    )
    return _Ready(meta, channel, breaker, envelope, message, context.get("count", 0))


def _timestamp(value: datetime | str) -> datetime:
    """A timestamp read back as text (SQLite, through a subquery): stored in UTC."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Ready:
    """A delivery ready to be sent."""

    meta: dict[str, Any]
    channel: Channel
    breaker: Breaker | None
    envelope: Envelope
    message: Rendered
    count: int  # a digest's events


async def _record_sent(notifier: Notifier, meta: dict[str, Any], sent: Sent) -> None:
    status = "delivered" if sent.delivered else "sent"
    await notifier.batches.records.call((meta["delivery_id"], status, sent.provider_id))
    emit_delivery(status, **meta, reason=None)


async def _fail(database: db.Database, meta: dict[str, Any], detail: str) -> jobs.Discard:
    async with database.transaction() as tx:
        await set_status(tx, meta["delivery_id"], "failed", otp.current_node().clock.now(), detail)
    emit_delivery("failed", **meta, reason=detail)
    return jobs.Discard(detail)
