"""What a :class:`~trunkline.notify.Notifier` is configured with: :class:`NotifyConfig`.

Everything is checked when made, and :class:`~trunkline.notify.InvalidConfig` names the
option::

    config = NotifyConfig(
        categories={
            "chat.mention": Category({"inapp": True, "email": True}),
            "billing.receipt": Category({"email": True}),
            "marketing.news": Category({"email": False}),      # used, but off unless chosen
            "chat.direct_message": Category(
                {"inapp": True, "email": True},
                fallback=Fallback("email", after_s=600),        # email if unread after 10 min
            ),
            "chat.room_message": Category({"inapp": True}, digest=Digest(window_s=300)),
        },
        throttle=Throttle(window_s=3600, threshold=20),
        unsubscribe_secret="...", unsubscribe_url="https://example.com/notify/unsubscribe",
    )
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .exceptions import InvalidConfig

__all__ = ["Category", "Digest", "Fallback", "NotifyConfig", "Throttle", "check_time_zone"]

_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _seconds(owner: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidConfig(f"{owner} must be a number of seconds > 0, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Digest:
    """Gather a category's events into one summary per user x channel every ``window_s``
    seconds (see "Digests" in ``docs/notify.md``).

    Attributes:
        window_s: how long a digest collects, from its first event.
        key: ``None``: one digest per user x category; else the name of a payload field:
            one per user x category x value of that field (events lacking it share one).
    """

    window_s: float
    key: str | None = None

    def __post_init__(self) -> None:
        _seconds("Digest.window_s", self.window_s)
        if self.key is not None and (not isinstance(self.key, str) or not _FIELD.match(self.key)):
            raise InvalidConfig(
                f"Digest.key must be a payload field name or None, not {self.key!r}"
            )


@dataclass(frozen=True)
class Fallback:
    """In-app first; if the in-app item is not read (or archived) within ``after_s``
    seconds, send by ``channel`` (see "Fallback" in ``docs/notify.md``)."""

    channel: str
    after_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not _NAME.match(self.channel):
            raise InvalidConfig(f"Fallback.channel must be a channel name, not {self.channel!r}")
        if self.channel == "inapp":
            raise InvalidConfig("Fallback.channel must be another channel than 'inapp'")
        _seconds("Fallback.after_s", self.after_s)


@dataclass(frozen=True)
class Category:
    """A category of notification: the channels it uses, each on or off by default (for
    users who chose nothing), and optionally a :class:`Digest` or a :class:`Fallback`."""

    channels: Mapping[str, bool]
    digest: Digest | None = None
    fallback: Fallback | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.channels, Mapping) or not self.channels:
            raise InvalidConfig(
                f"Category.channels must map channel names to on/off, not {self.channels!r}"
            )
        for name, default in self.channels.items():
            if not isinstance(name, str) or not _NAME.match(name) or name == "*":
                raise InvalidConfig(f"Category.channels: {name!r} is not a channel name")
            if not isinstance(default, bool):
                raise InvalidConfig(
                    f"Category.channels[{name!r}] must be True or False, not {default!r}"
                )
        object.__setattr__(self, "channels", dict(self.channels))
        if self.digest is not None and not isinstance(self.digest, Digest):
            raise InvalidConfig(
                f"Category.digest must be a Digest(...) or None, not {self.digest!r}"
            )
        fallback = self.fallback
        if fallback is not None:
            if not isinstance(fallback, Fallback):
                raise InvalidConfig(
                    f"Category.fallback must be a Fallback(...) or None, not {fallback!r}"
                )
            names = list(self.channels)
            if (
                "inapp" not in names
                or fallback.channel not in names
                or names.index("inapp") > names.index(fallback.channel)
            ):
                raise InvalidConfig(
                    f"Category.fallback: the category must use 'inapp', then {fallback.channel!r}"
                )
            if self.digest is not None:
                raise InvalidConfig("Category: a digest and a fallback cannot be combined")


@dataclass(frozen=True)
class Throttle:
    """At most ``threshold`` events reach one user within ``window_s`` seconds; deliveries
    of the events beyond are suppressed (reason ``throttle``)."""

    window_s: float
    threshold: int

    def __post_init__(self) -> None:
        w = self.window_s
        if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
            raise InvalidConfig(f"Throttle.window_s must be a number of seconds > 0, not {w!r}")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise InvalidConfig(f"Throttle.threshold must be an int >= 1, not {t!r}")


@dataclass(frozen=True)
class NotifyConfig:
    """The notification system's configuration.

    Attributes:
        categories: category name (``"chat.mention"``) -> :class:`Category`.
        throttle: the per-user :class:`Throttle`, or ``None`` for none.
        default_locale: the locale of users who set none.
        fallback_locale: where templates are looked for when the user's locale has none;
            every category x channel must have templates in it.
        default_time_zone: the IANA zone of users who set none (their quiet hours read it).
        unsubscribe_secret: the HMAC-SHA256 key of unsubscribe links; needed (16 bytes or
            more) when a category uses email.
        unsubscribe_url: the page of unsubscribe links (``?token=...`` is appended).
        template_directory: where templates are looked for before the built-in ones.
        idempotency_window_s: how long an idempotency key is remembered (24 hours).
    """

    categories: Mapping[str, Category]
    throttle: Throttle | None = None
    default_locale: str = "en"
    fallback_locale: str = "en"
    default_time_zone: str = "UTC"
    unsubscribe_secret: str | bytes | None = None
    unsubscribe_url: str | None = None
    template_directory: Path | str | None = None
    idempotency_window_s: float = 24 * 3600.0
    _secret: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.categories, Mapping) or not self.categories:
            raise InvalidConfig("categories must map category names to Category(...)")
        for name, category in self.categories.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise InvalidConfig(
                    f"categories: {name!r} is not a category name (like 'chat.mention')"
                )
            if not isinstance(category, Category):
                raise InvalidConfig(
                    f"categories[{name!r}] must be a Category(...), not {category!r}"
                )
        object.__setattr__(self, "categories", dict(self.categories))
        if self.throttle is not None and not isinstance(self.throttle, Throttle):
            raise InvalidConfig(f"throttle must be a Throttle(...) or None, not {self.throttle!r}")
        for option in ("default_locale", "fallback_locale"):
            value = getattr(self, option)
            if not isinstance(value, str) or not _LOCALE.match(value):
                raise InvalidConfig(
                    f"{option} must be a locale like 'en' or 'pt-BR', not {value!r}"
                )
        try:
            check_time_zone(self.default_time_zone)
        except ValueError as error:
            raise InvalidConfig(f"default_time_zone: {error}") from None
        secret = self.unsubscribe_secret
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and (not isinstance(secret, bytes) or len(secret) < 16):
            raise InvalidConfig("unsubscribe_secret must be a str or bytes of 16 bytes or more")
        if self.uses("email"):
            if secret is None:
                raise InvalidConfig("unsubscribe_secret is needed: a category uses email")
            if not isinstance(self.unsubscribe_url, str) or not self.unsubscribe_url.startswith(
                ("https://", "http://")
            ):
                raise InvalidConfig(
                    f"unsubscribe_url must be an http(s) URL when a category uses email, "
                    f"not {self.unsubscribe_url!r}"
                )
        object.__setattr__(self, "_secret", secret or b"")
        directory = self.template_directory
        if directory is not None and (
            not isinstance(directory, str | Path) or not Path(directory).is_dir()
        ):
            raise InvalidConfig(f"template_directory {directory!r} is not a directory")
        w = self.idempotency_window_s
        if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
            raise InvalidConfig(f"idempotency_window_s must be > 0, not {w!r}")

    def uses(self, channel: str) -> bool:
        """Whether any category uses ``channel``."""
        return any(channel in category.channels for category in self.categories.values())

    @property
    def channel_names(self) -> list[str]:
        """Every channel some category uses, in the order they first appear."""
        names: dict[str, None] = {}
        for category in self.categories.values():
            names.update(dict.fromkeys(category.channels))
        return list(names)

    @property
    def secret(self) -> bytes:
        """The unsubscribe secret, as bytes (empty when none is set)."""
        return self._secret


def check_time_zone(name: object) -> ZoneInfo:
    """The zone named ``name`` (IANA, like ``"Europe/Paris"``).

    Raises:
        ValueError: it is not a known zone.
    """
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone") from None
