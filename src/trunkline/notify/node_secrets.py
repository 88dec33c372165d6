"""Secrets a node makes once and keeps in its database: the unsubscribe links' key and the
VAPID key pair of web push, when the settings give none.

They must outlive a restart - an unsubscribe link in last month's email is signed with the
key, a browser's push subscription is bound to the VAPID public key - so the first start
makes them and every later start (of any node on the database) reads them back. Two nodes
starting at once agree: the first insert wins, the other reads what it stored.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

from trunkline import db, otp

from .channels.webpush import VapidKeys, generate_vapid_keys

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "kept_secret",
    "kept_unsubscribe_secret",
    "kept_vapid_keys",
]

COMPONENT = "notify_node"
"""The component of the ``notify_node_secrets`` table."""

MIGRATIONS = [
    db.Migration(
        1,
        "create notify_node_secrets",
        """
        CREATE TABLE notify_node_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    )
]

_INSERT = db.Query(
    "notify.node_secrets.insert",
    "INSERT INTO notify_node_secrets (name, value, created_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO NOTHING",
)
_GET = db.Query("notify.node_secrets.get", "SELECT value FROM notify_node_secrets WHERE name = $1")


async def kept_secret(database: db.Database, name: str, make: Callable[[], str]) -> str:
    """The secret ``name`` kept in ``database``, made with ``make()`` and stored if there is
    none yet."""
    value = await database.fetch_val(_GET, name)
    if value is None:
        await database.execute(_INSERT, name, make(), otp.current_node().clock.now())
        value = await database.fetch_val(_GET, name)
    return str(value)


async def kept_unsubscribe_secret(database: db.Database) -> str:
    """The database's unsubscribe key: 32 random bytes, base64url."""
    return await kept_secret(
        database,
        "unsubscribe",
        lambda: base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
    )


async def kept_vapid_keys(database: db.Database) -> VapidKeys:
    """The database's VAPID key pair (kept as one value, so that the halves always match)."""

    def make() -> str:
        keys = generate_vapid_keys()
        return f"{keys.private_key} {keys.public_key}"

    private, _, public = (await kept_secret(database, "vapid_keys", make)).partition(" ")
    return VapidKeys(private, public)
