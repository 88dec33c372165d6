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
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from trunkline import db, jobs, otp

from .addresses import (
    INAPP,
    WEBPUSH,
    get_push_subscription,
    remove_address,
    remove_push_subscription,
)
from .channel import AddressGone, Envelope, PermanentFailure, Sent, TransientFailure
from .deliveries import add_history, set_status
from .digests import digest_events, emit_digest
from .fallback import emit_fallback, seen, suppress_read
from .preferences import get_user_settings
from .telemetry import emit_delivery
from .templates import digest_templates
from .unsubscribe import EMAIL, unsubscribe_url

if TYPE_CHECKING:
    from .notifier import Notifier

__all__ = ["WORKER", "DeliverWorker"]

WORKER = "notify.deliver"
"""The name of the delivery worker."""

_LOAD = db.Query(
    "notify.deliver.load",
    "SELECT d.id, d.event_id, d.user_id, d.channel, d.address, d.status, d.after_delivery_id, "
    "e.category, e.actor_id, e.payload, e.created_at, g.id AS digest_id, g.event_ids "
    "FROM notify_deliveries AS d JOIN notify_events AS e ON e.id = d.event_id "
    "LEFT JOIN notify_digests AS g ON g.summary_event_id = d.event_id WHERE d.id = $1",
)
_ATTEMPT = db.Query(
    "notify.deliver.attempt",
    "UPDATE notify_deliveries SET attempts = attempts + 1, updated_at = $2 WHERE id = $1",
)
_SENT = db.Query(
    "notify.deliver.sent",
    "UPDATE notify_deliveries SET status = $2, provider_id = $3, updated_at = $4 WHERE id = $1",
)


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
    row = await database.fetch_one(_LOAD, delivery_id)
    if row is None:
        return jobs.Discard(f"delivery {delivery_id} does not exist")
    if row["status"] != "queued":
        return None  # done already: not sent twice
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
            "created_at": row["created_at"].isoformat(),
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
    settings = await get_user_settings(database, row["user_id"])
    try:
        message = notifier.templates.render(
            templates,
            row["channel"],
            settings.locale or notifier.config.default_locale,
            context,
        )
    except Exception as error:  # a template's own failure: it would fail the same again
        return await _fail(database, meta, f"the template failed: {error!r}")
    envelope = Envelope(
        delivery_id, row["event_id"], row["user_id"], row["category"], address, headers
    )
    clock = otp.current_node().clock
    await database.execute(_ATTEMPT, delivery_id, clock.now())
    try:
        sent = await channel.send(envelope, message)
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
    await _record_sent(database, meta, sent)
    if row["digest_id"] is not None:
        emit_digest("sent", {"events": context["count"]}, **meta, digest_id=row["digest_id"])
    if after is not None:
        emit_fallback("sent", **meta, after_delivery_id=after)
    return None


async def _record_sent(database: db.Database, meta: dict[str, Any], sent: Sent) -> None:
    status = "delivered" if sent.delivered else "sent"
    now = otp.current_node().clock.now()
    async with database.transaction() as tx:
        await tx.execute(_SENT, meta["delivery_id"], status, sent.provider_id, now)
        await add_history(tx, meta["delivery_id"], status, now, None)
    emit_delivery(status, **meta, reason=None)


async def _fail(database: db.Database, meta: dict[str, Any], detail: str) -> jobs.Discard:
    async with database.transaction() as tx:
        await set_status(tx, meta["delivery_id"], "failed", otp.current_node().clock.now(), detail)
    emit_delivery("failed", **meta, reason=detail)
    return jobs.Discard(detail)
