"""Where a user's notifications go: one address per user and channel (an email address,
a phone number, a webhook URL), and any number of web push subscriptions.

The in-app inbox needs no address. A push subscription is its browser's
``PushSubscription.toJSON()``: an ``endpoint`` (unique: a browser that subscribes again
replaces its row) and ``keys`` (``p256dh``, ``auth``); the web push channel receives it,
as JSON, as the envelope's address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trunkline import db, otp

from .exceptions import InvalidNotification
from .preferences import _check_user

__all__ = [
    "INAPP",
    "WEBPUSH",
    "PushSubscription",
    "add_push_subscription",
    "get_address",
    "get_addresses",
    "list_push_subscriptions",
    "remove_address",
    "remove_push_subscription",
    "set_address",
]

INAPP = "inapp"
"""The in-app inbox's channel name: it needs no address."""
WEBPUSH = "webpush"
"""The web push channel's name: its addresses are push subscriptions."""

_SET = db.Query(
    "notify.addresses.set",
    "INSERT INTO notify_addresses (user_id, channel, address, updated_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (user_id, channel) DO UPDATE SET address = excluded.address, "
    "updated_at = excluded.updated_at",
)
_GET_ALL = db.Query(
    "notify.addresses.get", "SELECT channel, address FROM notify_addresses WHERE user_id = $1"
)
_REMOVE = db.Query(
    "notify.addresses.remove", "DELETE FROM notify_addresses WHERE user_id = $1 AND channel = $2"
)
_REMOVE_IF = db.Query(
    "notify.addresses.remove_if",
    "DELETE FROM notify_addresses WHERE user_id = $1 AND channel = $2 AND address = $3",
)
_SUBSCRIBE = db.Query(
    "notify.push.subscribe",
    "INSERT INTO notify_push_subscriptions (user_id, endpoint, keys, created_at) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, "
    "keys = excluded.keys RETURNING id",
)
_SUBSCRIPTIONS = db.Query(
    "notify.push.list",
    "SELECT id, endpoint, keys FROM notify_push_subscriptions WHERE user_id = $1 ORDER BY id",
)
_SUBSCRIPTION = db.Query(
    "notify.push.get",
    "SELECT id, user_id, endpoint, keys FROM notify_push_subscriptions WHERE endpoint = $1",
)
_UNSUBSCRIBE = db.Query(
    "notify.push.remove", "DELETE FROM notify_push_subscriptions WHERE endpoint = $1"
)


@dataclass(frozen=True)
class PushSubscription:
    """A web push subscription of a user's browser."""

    id: int
    endpoint: str
    keys: Mapping[str, str]

    def to_json(self) -> str:
        """The subscription as the web push channel takes it: ``{"endpoint", "keys"}``."""
        return json.dumps({"endpoint": self.endpoint, "keys": dict(self.keys)})


async def set_address(conn: db.Queryable, user_id: int, channel: str, address: str) -> None:
    """Set ``user_id``'s address on ``channel`` (replacing the one there).

    Raises:
        InvalidNotification: a bad argument, the in-app or web push channel (which take
            none, or subscriptions); nothing is stored.
    """
    _check_user(user_id)
    _check_channel(channel)
    if not isinstance(address, str) or not address.strip() or len(address) > 2048:
        raise InvalidNotification(f"an address is a non-empty str, not {address!r}")
    await conn.execute(_SET, user_id, channel, address, otp.current_node().clock.now())


async def get_addresses(conn: db.Queryable, user_id: int) -> dict[str, str]:
    """``user_id``'s addresses by channel."""
    return {row["channel"]: row["address"] for row in await conn.fetch(_GET_ALL, user_id)}


async def get_address(conn: db.Queryable, user_id: int, channel: str) -> str | None:
    """``user_id``'s address on ``channel``, or ``None``."""
    return (await get_addresses(conn, user_id)).get(channel)


async def remove_address(
    conn: db.Queryable, user_id: int, channel: str, address: str | None = None
) -> bool:
    """Remove ``user_id``'s address on ``channel`` (only if it is still ``address``, when
    given); whether there was one."""
    if address is None:
        return bool(await conn.execute(_REMOVE, user_id, channel))
    return bool(await conn.execute(_REMOVE_IF, user_id, channel, address))


async def add_push_subscription(
    conn: db.Queryable, user_id: int, subscription: Mapping[str, Any]
) -> PushSubscription:
    """Store a browser's push subscription (``{"endpoint": ..., "keys": {"p256dh", "auth"}}``)
    for ``user_id``; an endpoint already stored is given to this user with these keys.

    Raises:
        InvalidNotification: not a subscription's shape; nothing is stored.
    """
    _check_user(user_id)
    endpoint = subscription.get("endpoint") if isinstance(subscription, Mapping) else None
    keys = subscription.get("keys") if isinstance(subscription, Mapping) else None
    if not isinstance(endpoint, str) or not endpoint.startswith("https://") or len(endpoint) > 2048:
        raise InvalidNotification(f"a push subscription needs an https endpoint, not {endpoint!r}")
    if (
        not isinstance(keys, Mapping)
        or not {"p256dh", "auth"} <= set(keys)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
    ):
        raise InvalidNotification("a push subscription needs keys {'p256dh': str, 'auth': str}")
    now = otp.current_node().clock.now()
    sub_id = await conn.fetch_val(_SUBSCRIBE, user_id, endpoint, json.dumps(dict(keys)), now)
    return PushSubscription(int(sub_id), endpoint, dict(keys))


async def list_push_subscriptions(conn: db.Queryable, user_id: int) -> list[PushSubscription]:
    """``user_id``'s push subscriptions, oldest first."""
    return [
        PushSubscription(row["id"], row["endpoint"], json.loads(row["keys"]))
        for row in await conn.fetch(_SUBSCRIPTIONS, user_id)
    ]


async def get_push_subscription(conn: db.Queryable, endpoint: str) -> PushSubscription | None:
    """The subscription of ``endpoint``, or ``None``."""
    row = await conn.fetch_one(_SUBSCRIPTION, endpoint)
    return (
        None
        if row is None
        else PushSubscription(row["id"], row["endpoint"], json.loads(row["keys"]))
    )


async def remove_push_subscription(conn: db.Queryable, endpoint: str) -> bool:
    """Remove the subscription of ``endpoint``; whether there was one."""
    return bool(await conn.execute(_UNSUBSCRIBE, endpoint))


def _check_channel(channel: object) -> None:
    if not isinstance(channel, str) or not channel:
        raise InvalidNotification(f"channel must be a channel's name, not {channel!r}")
    if channel in (INAPP, WEBPUSH):
        raise InvalidNotification(
            f"the {channel!r} channel takes no address"
            + (": add push subscriptions instead" if channel == WEBPUSH else "")
        )
