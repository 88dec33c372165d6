"""Who wants what: preferences per user x category x channel, and each user's settings
(time zone, locale, quiet hours).

A preference is on or off for one channel of a category, or for all its channels
(``channel=None``, stored as ``'*'``). When deciding, the channel's own preference wins,
then the all-channels one, then the category's default from the configuration: a user who
chose nothing gets the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trunkline import db, otp

from .config import check_time_zone
from .exceptions import InvalidNotification
from .quiet_hours import QuietHours

__all__ = [
    "ALL_CHANNELS",
    "Recipient",
    "UserSettings",
    "get_preferences",
    "get_recipients",
    "get_user_settings",
    "set_preference",
    "set_user_settings",
]

ALL_CHANNELS = "*"
"""How a preference for every channel of a category is stored."""

_UPSERT_PREFERENCE = db.Query(
    "notify.preferences.set",
    "INSERT INTO notify_preferences (user_id, category, channel, enabled, updated_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, category, channel) "
    "DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
)
_PREFERENCES = db.Query(
    "notify.preferences.get",
    "SELECT category, channel, enabled FROM notify_preferences WHERE user_id = $1",
)
_UPSERT_SETTINGS = db.Query(
    "notify.settings.set",
    "INSERT INTO notify_user_settings (user_id, time_zone, locale, quiet_hours, updated_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET "
    "time_zone = excluded.time_zone, locale = excluded.locale, "
    "quiet_hours = excluded.quiet_hours, updated_at = excluded.updated_at",
)
_SETTINGS = db.Query(
    "notify.settings.get",
    "SELECT time_zone, locale, quiet_hours FROM notify_user_settings WHERE user_id = $1",
)

# What ``send`` needs of its recipients, in one statement: their preferences ('p'),
# addresses ('a') and settings ('s'), one row each, for users given as a JSON array.
_RECIPIENTS = db.Query(
    "notify.recipients.get",
    postgresql="""
        WITH u AS (SELECT DISTINCT value::bigint AS id FROM json_array_elements_text($1::json))
        SELECT 'p' AS kind, user_id, category AS a, channel AS b, NULL::text AS c, enabled
        FROM notify_preferences WHERE user_id IN (SELECT id FROM u)
        UNION ALL SELECT 'a', user_id, channel, address, NULL, NULL
        FROM notify_addresses WHERE user_id IN (SELECT id FROM u)
        UNION ALL SELECT 's', user_id, time_zone, locale, quiet_hours, NULL
        FROM notify_user_settings WHERE user_id IN (SELECT id FROM u)""",
    sqlite="""
        SELECT 'p' AS kind, user_id, category AS a, channel AS b, NULL AS c, enabled
        FROM notify_preferences WHERE user_id IN (SELECT value FROM json_each($1))
        UNION ALL SELECT 'a', user_id, channel, address, NULL, NULL
        FROM notify_addresses WHERE user_id IN (SELECT value FROM json_each($1))
        UNION ALL SELECT 's', user_id, time_zone, locale, quiet_hours, NULL
        FROM notify_user_settings WHERE user_id IN (SELECT value FROM json_each($1))""",
)


@dataclass(frozen=True)
class UserSettings:
    """A user's settings; ``None`` where the user set nothing (the configuration's
    defaults apply)."""

    time_zone: str | None = None
    locale: str | None = None
    quiet_hours: QuietHours | None = None


async def set_preference(
    conn: db.Queryable, user_id: int, category: str, channel: str | None, enabled: bool
) -> None:
    """Turn ``category`` on or off for ``user_id`` on ``channel`` (``None``: on every
    channel of the category).

    Raises:
        InvalidNotification: an argument is of the wrong type.
    """
    _check_user(user_id)
    if not isinstance(category, str) or not category:
        raise InvalidNotification(f"category must be a non-empty str, not {category!r}")
    if channel is not None and (
        not isinstance(channel, str) or not channel or channel == ALL_CHANNELS
    ):
        raise InvalidNotification(f"channel must be a channel's name or None, not {channel!r}")
    if not isinstance(enabled, bool):
        raise InvalidNotification(f"enabled must be True or False, not {enabled!r}")
    now = otp.current_node().clock.now()
    await conn.execute(_UPSERT_PREFERENCE, user_id, category, channel or ALL_CHANNELS, enabled, now)


async def get_preferences(conn: db.Queryable, user_id: int) -> dict[tuple[str, str | None], bool]:
    """What ``user_id`` chose: ``{(category, channel or None): enabled}``."""
    rows = await conn.fetch(_PREFERENCES, user_id)
    return {
        (row["category"], None if row["channel"] == ALL_CHANNELS else row["channel"]): bool(
            row["enabled"]
        )
        for row in rows
    }


def preference_allows(
    chosen: Mapping[tuple[str, str | None], bool], category: str, channel: str, default: bool
) -> bool:
    """Whether a user with preferences ``chosen`` gets ``category`` on ``channel``."""
    if (category, channel) in chosen:
        return chosen[(category, channel)]
    if (category, None) in chosen:
        return chosen[(category, None)]
    return default


async def set_user_settings(
    conn: db.Queryable,
    user_id: int,
    *,
    time_zone: str | None = None,
    locale: str | None = None,
    quiet_hours: Mapping[str, Sequence[str]] | QuietHours | None = None,
) -> UserSettings:
    """Store ``user_id``'s settings (all three at once: ``None`` clears one).

    Raises:
        InvalidNotification: an unknown time zone, a malformed locale or quiet hours;
            nothing is stored.
    """
    _check_user(user_id)
    if time_zone is not None:
        try:
            check_time_zone(time_zone)
        except ValueError as error:
            raise InvalidNotification(f"time_zone: {error}") from None
    if locale is not None and (not isinstance(locale, str) or not 2 <= len(locale) <= 35):
        raise InvalidNotification(f"locale must be like 'en' or 'pt-BR', not {locale!r}")
    hours = (
        quiet_hours
        if isinstance(quiet_hours, QuietHours) or quiet_hours is None
        else QuietHours.parse(quiet_hours)
    )
    now = otp.current_node().clock.now()
    stored = None if hours is None else json.dumps(hours.to_json())
    await conn.execute(_UPSERT_SETTINGS, user_id, time_zone, locale, stored, now)
    return UserSettings(time_zone, locale, hours)


async def get_user_settings(conn: db.Queryable, user_id: int) -> UserSettings:
    """``user_id``'s settings (all ``None`` for a user who set none)."""
    row = await conn.fetch_one(_SETTINGS, user_id)
    if row is None:
        return UserSettings()
    hours: Any = row["quiet_hours"]
    return _settings(row["time_zone"], row["locale"], hours)


@dataclass(frozen=True)
class Recipient:
    """What deciding a user's deliveries takes: their preferences (as
    :func:`get_preferences` gives them), addresses by channel, and settings."""

    preferences: dict[tuple[str, str | None], bool]
    addresses: dict[str, str]
    settings: UserSettings


async def get_recipients(conn: db.Queryable, user_ids: Sequence[int]) -> dict[int, Recipient]:
    """The :class:`Recipient` of each of ``user_ids``, read in one statement."""
    preferences: dict[int, dict[tuple[str, str | None], bool]] = {}
    addresses: dict[int, dict[str, str]] = {}
    settings: dict[int, UserSettings] = {}
    for row in await conn.fetch(_RECIPIENTS, json.dumps(sorted(set(user_ids)))):
        user, kind = int(row["user_id"]), row["kind"]
        if kind == "p":
            channel = None if row["b"] == ALL_CHANNELS else row["b"]
            preferences.setdefault(user, {})[(row["a"], channel)] = bool(row["enabled"])
        elif kind == "a":
            addresses.setdefault(user, {})[row["a"]] = row["b"]
        else:
            settings[user] = _settings(row["a"], row["b"], row["c"])
    return {
        user: Recipient(
            preferences.get(user, {}), addresses.get(user, {}), settings.get(user, UserSettings())
        )
        for user in user_ids
    }


def _settings(time_zone: str | None, locale: str | None, hours: str | None) -> UserSettings:
    return UserSettings(
        time_zone, locale, None if hours is None else QuietHours.parse(json.loads(hours))
    )


def _check_user(user_id: object) -> None:
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise InvalidNotification(f"user ids are ints, not {user_id!r}")
