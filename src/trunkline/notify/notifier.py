"""The notification pipeline: :class:`Notifier`.

``send`` takes an event and, for each recipient x channel of its category, decides in one
transaction:

1. a recipient listed twice: ``suppressed`` (``duplicate``) the second time;
2. the user's preference (unset: the category's default), unless the event is critical:
   ``suppressed`` (``preference``);
3. the address (the in-app inbox needs none; web push: one delivery per subscription):
   ``suppressed`` (``no_address``);
4. the throttle: a user who already got ``threshold`` events within ``window_s``:
   ``suppressed`` (``throttle``), unless critical (a digest's summary counts as one event,
   the events it gathered do not);
5. quiet hours in the user's zone, unless critical: the delivery is *held*: ``queued``,
   reason ``quiet_hours``, its job scheduled when they end;

then stores a ``queued`` delivery and enqueues its ``notify.deliver`` job in the same
transaction (see ``deliver.py``). Every decision is a delivery row with its history.

Two kinds of category change the last step: one with a digest stores its deliveries
``digested`` into the user's open digest instead (unless the event is critical; see
``digests.py``), and one with a fallback holds its fallback channel's delivery until the
in-app one has had time to be read (see ``fallback.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trunkline import db, jobs, otp

from .addresses import INAPP, WEBPUSH, list_push_subscriptions
from .bulk import Pending, is_plain
from .bulk import store as store_plain
from .channel import Channel
from .config import NotifyConfig, check_time_zone
from .deliver import DeliverWorker, DeliveryBatches
from .deliveries import insert_delivery
from .digests import DigestWorker, digest_key, emit_digest, gather, store_digested
from .exceptions import InvalidConfig, InvalidNotification, UnknownCategory
from .fallback import set_after
from .inbox import InboxChannel
from .preferences import (
    Recipient,
    UserSettings,
    get_recipients,
    get_user_settings,
    preference_allows,
)
from .results import DeliveryResult, EventResult
from .telemetry import EVENT_RECEIVED, emit_delivery
from .templates import Templates

__all__ = ["Breaker", "Notifier"]

_MAX_KEY = 255

_DROP_EXPIRED_KEY = db.Query(
    "notify.keys.expire", "DELETE FROM notify_event_keys WHERE key = $1 AND expires_at <= $2"
)
_TAKE_KEY = db.Query(
    "notify.keys.take",
    "INSERT INTO notify_event_keys (key, event_id, expires_at) VALUES ($1, NULL, $2) "
    "ON CONFLICT (key) DO NOTHING RETURNING key",
)
_KNOWN_KEY = db.Query(
    "notify.keys.result",
    "SELECT e.result FROM notify_event_keys AS k JOIN notify_events AS e ON e.id = k.event_id "
    "WHERE k.key = $1",
)
_SET_KEY = db.Query("notify.keys.set", "UPDATE notify_event_keys SET event_id = $2 WHERE key = $1")
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1  # a BIGINT's range
# Batches of plain events written at once: each a transaction of a few statements, so that
# senders do not all wait behind one (measured: 4 lanes send 15-20% more than 1 with 8 to
# 32 senders; the pool has 10 connections).
_PLAIN_LANES = 4
_INSERT_EVENT = db.Query(
    "notify.events.insert",
    "INSERT INTO notify_events (category, actor_id, payload, idempotency_key, critical, "
    "send_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
)
_SET_RESULT = db.Query("notify.events.result", "UPDATE notify_events SET result = $2 WHERE id = $1")
_SET_JOB = db.Query(
    "notify.deliveries.job", "UPDATE notify_deliveries SET job_id = $2 WHERE id = $1"
)
_RECENT_EVENTS = db.Query(
    "notify.throttle.count",
    "SELECT count(DISTINCT event_id) FROM notify_deliveries "
    # A digest counts once, by its summary's deliveries: not by the events it gathered.
    "WHERE user_id = $1 AND created_at > $2 AND status NOT IN ('suppressed', 'digested')",
)


class Breaker(Protocol):
    """What the delivery job asks of a channel's circuit breaker
    (``trunkline.notify.breaker.CircuitBreaker`` has it)."""

    def allow(self) -> bool: ...
    def retry_after_s(self) -> float: ...
    def record_success(self) -> None: ...
    def record_failure(self) -> None: ...


class Notifier:
    """The notification system of a database: its configuration, channels, templates and
    the ``notify.deliver`` worker.

    Args:
        database: where events, deliveries and jobs are stored (migrated for
            ``"notify"`` and ``"jobs"``).
        config: the :class:`~trunkline.notify.NotifyConfig`.
        channels: a :class:`~trunkline.notify.Channel` for every channel the categories use
            (by ``name``); the in-app inbox is made for you if not given.
        registry: the ``jobs.WorkerRegistry`` the delivery worker and the digest worker
            are registered in (they can be registered later:
            ``registry.register(notifier.worker)``, ``notifier.digest_worker``).
        breakers: a circuit breaker per channel name, asked before each send.
        queue: the queue of the delivery jobs (``"notify"``).
        max_attempts: attempts of a delivery job before it is given up (``failed``).

    Raises:
        InvalidConfig: a category uses a channel that is not given, or an option is bad.
        TemplateMissing: a category x channel has no template in the fallback locale.

    Example::

        notifier = Notifier(database, config, channels=[EmailChannel(...)], registry=registry)
        node = jobs.Jobs(database, registry=registry, queues={"notify": 20})
        result = await notifier.send("chat.mention", [7], payload={"text": "hi @ada"})
    """

    def __init__(
        self,
        database: db.Database,
        config: NotifyConfig,
        *,
        channels: Iterable[Channel] = (),
        registry: jobs.WorkerRegistry | None = None,
        breakers: Mapping[str, Breaker] | None = None,
        queue: str = "notify",
        max_attempts: int = 10,
    ) -> None:
        if not isinstance(config, NotifyConfig):
            raise InvalidConfig(f"config must be a NotifyConfig, not {config!r}")
        self.database = database
        self.config = config
        self.channels: dict[str, Channel] = {}
        for channel in channels:
            if not isinstance(channel, Channel):
                raise InvalidConfig(f"channels: {channel!r} is not a Channel (name, send)")
            if channel.name in self.channels:
                raise InvalidConfig(f"channels: two channels are named {channel.name!r}")
            self.channels[channel.name] = channel
        if config.uses(INAPP) and INAPP not in self.channels:
            self.channels[INAPP] = InboxChannel(database)
        missing = [name for name in config.channel_names if name not in self.channels]
        if missing:
            raise InvalidConfig(f"channels: no channel given for {', '.join(map(repr, missing))}")
        self.breakers: dict[str, Breaker] = dict(breakers or {})
        unknown = set(self.breakers) - set(self.channels)
        if unknown:
            raise InvalidConfig(f"breakers: no channel named {', '.join(sorted(unknown))}")
        self.templates = Templates(config)
        self.batches = DeliveryBatches(database)
        self._plain: db.Batches[Pending, EventResult | Exception] = db.Batches(
            self._store_plain, lanes=_PLAIN_LANES
        )
        try:
            self.worker = DeliverWorker(self, queue=queue, max_attempts=max_attempts)
            self.digest_worker = DigestWorker(self, queue=queue, max_attempts=max_attempts)
        except jobs.InvalidJob as error:
            raise InvalidConfig(str(error)) from None
        if registry is not None:
            registry.register(self.worker)
            registry.register(self.digest_worker)

    def __repr__(self) -> str:
        categories = sorted(self.config.categories)
        return f"<Notifier channels={sorted(self.channels)} categories={categories}>"

    async def send(
        self,
        category: str,
        recipients: Iterable[int],
        *,
        actor: int | None = None,
        payload: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        critical: bool = False,
        send_at: datetime | None = None,
        tx: db.Transaction | None = None,
    ) -> EventResult:
        """Send an event of ``category`` to ``recipients`` (user ids).

        Args:
            category: one of the configuration's categories.
            recipients: the users it is for (at least one).
            actor: the user who caused it, if any.
            payload: a JSON object for the templates (and webhooks, push data, inbox).
            idempotency_key: a repeat with this key within 24 hours returns the first
                send's result, with ``duplicate=True``, and stores nothing.
            critical: bypass preferences, quiet hours and the throttle.
            send_at: an aware datetime: deliver no earlier.
            tx: a transaction of the caller's: everything is written in it, and exists
                only if it commits.

        Returns:
            The event's id and its deliveries.

        Raises:
            UnknownCategory: the category is not configured (nothing stored).
            InvalidNotification: bad input (nothing stored).
        """
        self._check(category, actor, critical, send_at, idempotency_key)
        users = _recipients(recipients)
        payload_text = _payload(payload)
        opened: list[dict[str, Any]] = []
        if tx is None and idempotency_key is None and is_plain(self, category):
            # Stored with the plain events sent meanwhile (bulk.py).
            stored = await self._plain.call(
                Pending(category, users, actor, payload_text, critical, send_at)
            )
            if isinstance(stored, Exception):
                raise stored
            result = stored
        else:
            args = (category, users, actor, payload_text, idempotency_key, critical, send_at)
            if tx is not None:
                result = await self._send(tx, *args, opened)
            else:
                async with self.database.transaction() as own:
                    result = await self._send(own, *args, opened)
        if otp.telemetry.has_handlers(EVENT_RECEIVED):
            otp.telemetry.execute(
                EVENT_RECEIVED,
                {"recipients": len(users)},
                {
                    "event_id": result.event_id,
                    "category": category,
                    "critical": critical,
                    "duplicate": result.duplicate,
                },
            )
        if not result.duplicate:
            for delivery in result.deliveries:
                emit_delivery(
                    delivery.status,
                    delivery_id=delivery.delivery_id,
                    event_id=result.event_id,
                    user_id=delivery.user_id,
                    category=category,
                    channel=delivery.channel,
                    reason=delivery.reason,
                )
        for digest in opened:
            emit_digest("opened", {"count": 1}, **digest)
        return result

    async def _store_plain(self, sends: list[Pending]) -> list[EventResult | Exception]:
        """Store a batch of plain events in one transaction; if it fails, each alone, so
        that one bad event fails only its own ``send``."""
        try:
            async with self.database.transaction() as tx:
                return list(await store_plain(self, tx, sends))
        except Exception as error:
            if len(sends) == 1:
                return [error]
        results: list[EventResult | Exception] = []
        for pending in sends:
            try:
                async with self.database.transaction() as tx:
                    results += await store_plain(self, tx, [pending])
            except Exception as error:
                results.append(error)
        return results

    def _check(
        self,
        category: object,
        actor: object,
        critical: object,
        send_at: object,
        key: object,
    ) -> None:
        if not isinstance(category, str) or category not in self.config.categories:
            known = ", ".join(sorted(self.config.categories))
            raise UnknownCategory(f"unknown category {category!r}; configured: {known}")
        if actor is not None and (
            isinstance(actor, bool) or not isinstance(actor, int) or not _ID_MIN <= actor <= _ID_MAX
        ):
            raise InvalidNotification(f"actor must be a user id (int) or None, not {actor!r}")
        if not isinstance(critical, bool):
            raise InvalidNotification(f"critical must be True or False, not {critical!r}")
        if send_at is not None and (not isinstance(send_at, datetime) or send_at.tzinfo is None):
            raise InvalidNotification(f"send_at must be an aware datetime, not {send_at!r}")
        if key is not None and (not isinstance(key, str) or not key or len(key) > _MAX_KEY):
            raise InvalidNotification(
                f"idempotency_key must be a str of 1 to {_MAX_KEY} characters"
            )

    async def _send(
        self,
        tx: db.Transaction,
        category: str,
        users: Sequence[int],
        actor: int | None,
        payload: str,
        key: str | None,
        critical: bool,
        send_at: datetime | None,
        opened: list[dict[str, Any]],
    ) -> EventResult:
        now = otp.current_node().clock.now()
        if key is not None:
            await tx.execute(_DROP_EXPIRED_KEY, key, now)
            expires = now + timedelta(seconds=self.config.idempotency_window_s)
            if await tx.fetch_one(_TAKE_KEY, key, expires) is None:
                known = await tx.fetch_val(_KNOWN_KEY, key)
                return EventResult.from_json(json.loads(known)).as_duplicate()
        event_id = int(
            await tx.fetch_val(_INSERT_EVENT, category, actor, payload, key, critical, send_at, now)
        )
        due = max(now, send_at.astimezone(UTC)) if send_at is not None else now
        digest = self.config.categories[category].digest
        gathered_by: str | None = None  # the digest key, when the event is gathered
        if digest is not None and not critical:
            gathered_by = digest_key(category, digest, json.loads(payload))
        deliveries: list[DeliveryResult] = []
        seen: set[int] = set()
        recipients = await get_recipients(tx, users)
        for user_id in users:
            duplicate = user_id in seen
            seen.add(user_id)
            deliveries += await self._for_user(
                tx,
                event_id,
                category,
                user_id,
                recipients[user_id],
                critical,
                due,
                now,
                duplicate,
                gathered_by,
                opened,
            )
        result = EventResult(event_id, category, tuple(deliveries))
        if key is not None:  # what a repeat with the key returns (the only reader)
            await tx.execute(_SET_RESULT, event_id, json.dumps(result.to_json()))
            await tx.execute(_SET_KEY, key, event_id)
        return result

    async def _for_user(
        self,
        tx: db.Transaction,
        event_id: int,
        category: str,
        user_id: int,
        recipient: Recipient,
        critical: bool,
        due: datetime,
        now: datetime,
        duplicate: bool,
        key: str | None,
        opened: list[dict[str, Any]],
    ) -> list[DeliveryResult]:
        spec = self.config.categories[category]
        fallback = spec.fallback
        digest_id: int | None = None
        inapp_id: int | None = None  # the in-app delivery a fallback waits on
        chosen = recipient.preferences
        addresses = recipient.addresses
        throttled: bool | None = None
        held_until: datetime | None = None
        quiet_checked = False  # quiet hours are looked up once per user, when needed
        out: list[DeliveryResult] = []
        for channel, default in spec.channels.items():
            targets: list[str | None]
            if channel == INAPP:
                targets = [str(user_id)]
            elif channel == WEBPUSH:
                targets = [sub.endpoint for sub in await list_push_subscriptions(tx, user_id)]
            else:
                targets = [addresses[channel]] if channel in addresses else []
            reason: str | None = None
            if duplicate:
                reason = "duplicate"
            elif not critical and not preference_allows(chosen, category, channel, default):
                reason = "preference"
            elif not targets:
                reason = "no_address"
            elif not critical:
                if throttled is None:
                    throttled = await self._throttled(tx, user_id, now)
                if throttled:
                    reason = "throttle"
            if reason is not None:
                out.append(
                    await self._suppress(tx, event_id, user_id, channel, reason, now, targets)
                )
                continue
            if key is not None:  # a digest: quiet hours apply to its summary, when sealed
                if digest_id is None:
                    digest_id = await gather(
                        tx,
                        self,
                        user_id=user_id,
                        category=category,
                        key=key,
                        now=now,
                        opened=opened,
                    )
                for address in targets:
                    out.append(
                        await store_digested(
                            tx,
                            event_id=event_id,
                            user_id=user_id,
                            channel=channel,
                            address=address,
                            digest_id=digest_id,
                            key=key,
                            now=now,
                        )
                    )
                continue
            if fallback is not None and channel == fallback.channel and inapp_id is not None:
                out += await self._fallback(
                    tx,
                    event_id,
                    user_id,
                    recipient.settings,
                    channel,
                    targets,
                    # counted from when the in-app item is made (after quiet hours, if held)
                    (held_until or due) + timedelta(seconds=fallback.after_s),
                    now,
                    critical,
                    inapp_id,
                    fallback.after_s,
                )
                continue
            if not quiet_checked and not critical:
                held_until = self.quiet_until_of(recipient.settings, due)
            quiet_checked = True
            for address in targets:
                queued = await self._queue(
                    tx, event_id, user_id, channel, address, due, held_until, now
                )
                if channel == INAPP:
                    inapp_id = queued.delivery_id
                out.append(queued)
        return out

    async def _fallback(
        self,
        tx: db.Transaction,
        event_id: int,
        user_id: int,
        settings: UserSettings,
        channel: str,
        targets: list[str | None],
        later: datetime,
        now: datetime,
        critical: bool,
        inapp_id: int,
        after_s: float,
    ) -> list[DeliveryResult]:
        """Held deliveries on ``channel``, sent at ``later`` if ``inapp_id`` is unread."""
        held_until = None if critical else self.quiet_until_of(settings, later)
        detail = f"fallback: sent if in-app delivery {inapp_id} is not read by {later.isoformat()}"
        out = []
        for address in targets:
            queued = await self._queue(
                tx,
                event_id,
                user_id,
                channel,
                address,
                later,
                held_until,
                now,
                hold=("fallback", detail),
            )
            await set_after(tx, queued.delivery_id, inapp_id, after_s)
            out.append(queued)
        return out

    async def _suppress(
        self,
        tx: db.Transaction,
        event_id: int,
        user_id: int,
        channel: str,
        reason: str,
        now: datetime,
        targets: list[str | None],
    ) -> DeliveryResult:
        address = targets[0] if targets else None
        delivery_id = await insert_delivery(
            tx, event_id, user_id, channel, address, "suppressed", reason, None, now, reason
        )
        return DeliveryResult(delivery_id, user_id, channel, "suppressed", reason)

    async def _queue(
        self,
        tx: db.Transaction,
        event_id: int,
        user_id: int,
        channel: str,
        address: str | None,
        due: datetime,
        held_until: datetime | None,
        now: datetime,
        hold: tuple[str, str] | None = None,
    ) -> DeliveryResult:
        at = held_until if held_until is not None else due
        reason, detail = hold if hold is not None else (None, None)
        if held_until is not None:
            reason = "quiet_hours"
            detail = f"held by quiet hours until {at.isoformat()}"
            if hold is not None:
                detail = f"{hold[1]}; {detail}"
        delivery_id = await insert_delivery(
            tx, event_id, user_id, channel, address, "queued", reason, at, now, detail
        )
        job = await jobs.enqueue(
            tx, self.worker, {"delivery_id": delivery_id}, scheduled_at=at if at > now else None
        )
        await tx.execute(_SET_JOB, delivery_id, job.id)
        return DeliveryResult(delivery_id, user_id, channel, "queued", reason, at, job.id)

    async def _throttled(self, tx: db.Transaction, user_id: int, now: datetime) -> bool:
        throttle = self.config.throttle
        if throttle is None:
            return False
        since = now - timedelta(seconds=throttle.window_s)
        count = await tx.fetch_val(_RECENT_EVENTS, user_id, since)
        return int(count or 0) >= throttle.threshold

    async def quiet_until(self, tx: db.Transaction, user_id: int, due: datetime) -> datetime | None:
        """Until when ``user_id``'s quiet hours hold a delivery due at ``due``, or ``None``."""
        return self.quiet_until_of(await get_user_settings(tx, user_id), due)

    def quiet_until_of(self, settings: UserSettings, due: datetime) -> datetime | None:
        """Until when quiet hours in ``settings`` hold a delivery due at ``due``, or ``None``."""
        if settings.quiet_hours is None:
            return None
        zone = check_time_zone(settings.time_zone or self.config.default_time_zone)
        return settings.quiet_hours.quiet_until(due, zone)


def _recipients(recipients: object) -> list[int]:
    if isinstance(recipients, str | bytes) or not isinstance(recipients, Iterable):
        raise InvalidNotification(f"recipients must be user ids (ints), not {recipients!r}")
    users = list(recipients)
    if not users:
        raise InvalidNotification("recipients is empty: an event is for at least one user")
    for user in users:
        if isinstance(user, bool) or not isinstance(user, int) or not _ID_MIN <= user <= _ID_MAX:
            raise InvalidNotification(f"recipients must be user ids (ints), not {user!r}")
    return users


def _payload(payload: object) -> str:
    if payload is None:
        return "{}"
    if not isinstance(payload, Mapping):
        raise InvalidNotification(f"payload must be a JSON object (a dict), not {payload!r}")
    try:
        text = json.dumps(dict(payload), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidNotification(f"payload is not JSON: {error}") from None
    if json.loads(text) != payload:
        raise InvalidNotification("payload does not read back as it is (tuples? non-str keys?)")
    return text
