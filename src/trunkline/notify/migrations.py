"""The schema of the notification system: the migrations of the ``"notify"`` component.

- ``notify_events``: one row per event sent: its category, actor, payload (JSON text),
  ``critical``, ``send_at``, and ``result``, the :class:`~trunkline.notify.EventResult` of
  its send as JSON, which a repeat with the same idempotency key returns.
- ``notify_event_keys``: the idempotency keys, one row each, unique; a key is taken again
  only once its row has expired (24 hours after the event).
- ``notify_deliveries``: one row per recipient x channel (x push subscription) of an event:
  ``status`` (``queued``, ``suppressed``, ``sent``, ``delivered``, ``failed``, ``read``),
  ``reason`` (why suppressed, or why held), ``scheduled_at``, the ``job_id`` of its
  ``notify.deliver`` job, ``provider_id``, ``attempts``, ``digest_key`` (the key a
  ``digested`` delivery was gathered under), and ``after_delivery_id`` / ``after_unread_s``
  (a fallback: sent only if that in-app delivery is still unread after so long).
- ``notify_delivery_history``: every status a delivery went through, with a detail.
- ``notify_preferences``: per user x category x channel (``'*'``: every channel) on or off.
- ``notify_user_settings``: a user's IANA time zone, locale and weekly quiet hours (JSON).
- ``notify_addresses``: a user's address per channel (email, phone, webhook URL).
- ``notify_push_subscriptions``: web push subscriptions, ``endpoint`` unique, ``keys`` JSON.
- ``notify_inbox``: the in-app inbox: one item per in-app delivery.

Version 2 adds digests: ``notify_digests`` (one row per window of a user x digest key:
``open`` while it collects, ``sealed`` once its summary deliveries exist, with the
``event_ids`` it covers, fixed when sealed, and its ``summary_event_id``; one open digest
per user x key, by a partial unique index), ``notify_deliveries.digest_id`` (the digest a
``digested`` delivery was gathered in), and the status ``digested``.

JSON columns are ``TEXT`` on both databases. Run them with
``await database.migrate({COMPONENT: MIGRATIONS})``.
"""

from __future__ import annotations

from trunkline import db

__all__ = ["COMPONENT", "MIGRATIONS", "STATUSES"]

COMPONENT = "notify"

STATUSES = ("queued", "suppressed", "digested", "sent", "delivered", "failed", "read")
"""The statuses of a delivery."""

# Version 1's statuses, as applied: its SQL (and so its checksum) must never change.
_V1_STATUSES = ("queued", "suppressed", "sent", "delivered", "failed", "read")
_STATUS_CHECK = ", ".join(f"'{status}'" for status in _V1_STATUSES)
_V2_STATUS_CHECK = ", ".join(f"'{status}'" for status in STATUSES)

_SCHEMA = f"""
CREATE TABLE notify_events (
    id <id>,
    category TEXT NOT NULL,
    actor_id BIGINT,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    critical BOOLEAN NOT NULL,
    send_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    result TEXT
);
CREATE TABLE notify_event_keys (
    key TEXT PRIMARY KEY,
    event_id BIGINT REFERENCES notify_events (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE notify_deliveries (
    id <id>,
    event_id BIGINT NOT NULL REFERENCES notify_events (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT,
    status TEXT NOT NULL CHECK (status IN ({_STATUS_CHECK})),
    reason TEXT,
    scheduled_at TIMESTAMPTZ,
    job_id BIGINT,
    provider_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    digest_key TEXT,
    after_delivery_id BIGINT REFERENCES notify_deliveries (id) ON DELETE SET NULL,
    after_unread_s DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notify_deliveries_event ON notify_deliveries (event_id, id);
CREATE INDEX notify_deliveries_user ON notify_deliveries (user_id, created_at);
CREATE TABLE notify_delivery_history (
    id <id>,
    delivery_id BIGINT NOT NULL REFERENCES notify_deliveries (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    detail TEXT
);
CREATE INDEX notify_delivery_history_delivery ON notify_delivery_history (delivery_id, id);
CREATE TABLE notify_preferences (
    user_id BIGINT NOT NULL,
    category TEXT NOT NULL,
    channel TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, category, channel)
);
CREATE TABLE notify_user_settings (
    user_id BIGINT PRIMARY KEY,
    time_zone TEXT,
    locale TEXT,
    quiet_hours TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE notify_addresses (
    user_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, channel)
);
CREATE TABLE notify_push_subscriptions (
    id <id>,
    user_id BIGINT NOT NULL,
    endpoint TEXT NOT NULL UNIQUE,
    keys TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notify_push_subscriptions_user ON notify_push_subscriptions (user_id, id);
CREATE TABLE notify_inbox (
    id <id>,
    user_id BIGINT NOT NULL,
    delivery_id BIGINT UNIQUE REFERENCES notify_deliveries (id) ON DELETE CASCADE,
    title TEXT,
    body TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    read_at TIMESTAMPTZ,
    archived_at TIMESTAMPTZ
);
CREATE INDEX notify_inbox_user ON notify_inbox (user_id, id);
"""

_DIGESTS = """
CREATE TABLE notify_digests (
    id <id>,
    user_id BIGINT NOT NULL,
    category TEXT NOT NULL,
    digest_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'sealed')),
    opened_at TIMESTAMPTZ NOT NULL,
    closes_at TIMESTAMPTZ NOT NULL,
    job_id BIGINT,
    sealed_at TIMESTAMPTZ,
    event_ids TEXT,
    summary_event_id BIGINT UNIQUE REFERENCES notify_events (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX notify_digests_open ON notify_digests (user_id, digest_key)
    WHERE status = 'open';
ALTER TABLE notify_deliveries
    ADD COLUMN digest_id BIGINT REFERENCES notify_digests (id) ON DELETE SET NULL;
CREATE INDEX notify_deliveries_digest ON notify_deliveries (digest_id)
    WHERE digest_id IS NOT NULL
"""


async def _add_digests(tx: db.Transaction) -> None:
    postgresql = tx.dialect == "postgresql"
    identity = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    script = _DIGESTS.replace("<id>", identity if postgresql else "INTEGER PRIMARY KEY")
    for statement in script.split(";"):
        await tx.execute(statement)
    if postgresql:
        await tx.execute(
            "ALTER TABLE notify_deliveries DROP CONSTRAINT notify_deliveries_status_check, "
            "ADD CONSTRAINT notify_deliveries_status_check "
            f"CHECK (status IN ({_V2_STATUS_CHECK}))"
        )
        return
    # SQLite cannot alter a CHECK; rebuilding the table would cascade-delete the history
    # and inbox rows (foreign keys are on, and cannot be turned off in a transaction). A
    # constraint that only widens is the case SQLite documents for editing the schema
    # text in place, bumping schema_version so every connection reloads it.
    version = int(await tx.fetch_val("PRAGMA schema_version"))
    await tx.execute("PRAGMA writable_schema = ON")
    await tx.execute(
        "UPDATE sqlite_master SET sql = replace(sql, $1, $2) "
        "WHERE type = 'table' AND name = 'notify_deliveries'",
        f"CHECK (status IN ({_STATUS_CHECK}))",
        f"CHECK (status IN ({_V2_STATUS_CHECK}))",
    )
    await tx.execute(f"PRAGMA schema_version = {version + 1}")
    await tx.execute("PRAGMA writable_schema = OFF")


MIGRATIONS = [
    db.Migration(
        1,
        "create the notify tables",
        postgresql=_SCHEMA.replace("<id>", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        sqlite=_SCHEMA.replace("<id>", "INTEGER PRIMARY KEY"),
    ),
    db.Migration(2, "digests", run=_add_digests),
]
"""The migrations of the ``"notify"`` component, in version order."""
