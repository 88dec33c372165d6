"""The ``[notify]`` section of a node's settings: the notification system of ``trunkline serve``.

Every channel but the in-app inbox is off until configured: no ``[notify.smtp]``, no email is
sent (a delivery to an email address then fails at once, saying so in its history - a node
without SMTP still starts). The unsubscribe secret and the VAPID keys, when not given, are made
on the first start and kept in the database (``trunkline.notify.server_secrets``), so links in
old emails and browsers' push subscriptions keep working across restarts.
See "In trunkline serve" in ``docs/notify.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trunkline.notify import Category, InvalidConfig
from trunkline.notify.channels import SmtpSettings, WebhookSettings
from trunkline.notify.config import check_time_zone

__all__ = [
    "CHAT_CATEGORIES",
    "NotifySettings",
    "SmsSection",
    "SmtpSection",
    "ThrottleSection",
    "WebPushSection",
    "WebhookSection",
]

CHANNELS = ("inapp", "email", "webpush", "sms", "webhook")
"""The channels of ``trunkline serve``."""

CHAT_CATEGORIES: dict[str, dict[str, bool]] = {
    category: {"inapp": True, "email": True, "webpush": False, "sms": False, "webhook": False}
    for category in ("chat.direct_message", "chat.mention")
}
"""The default categories: the chat's events, in the inbox and by email unless users choose."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThrottleSection(_Section):
    """At most ``threshold`` events reach one user within ``window_s`` seconds."""

    window_s: float = Field(gt=0)
    threshold: int = Field(ge=1)


class SmtpSection(_Section):
    """The SMTP server emails go through (:class:`~trunkline.notify.channels.SmtpSettings`)."""

    host: str = Field(min_length=1)
    from_address: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    security: Literal["none", "starttls", "tls"] = "starttls"
    timeout_s: float = Field(default=30.0, gt=0)
    validate_certs: bool = True

    @model_validator(mode="after")
    def _check(self) -> SmtpSection:
        self.smtp_settings()  # raises ValueError with the option's name
        return self

    def smtp_settings(self) -> SmtpSettings:
        """The email channel's settings."""
        return SmtpSettings(
            host=self.host,
            from_address=self.from_address,
            port=self.port,
            username=self.username,
            password=self.password,
            security=self.security,
            timeout_s=self.timeout_s,
            validate_certs=self.validate_certs,
        )


class WebhookSection(_Section):
    """Users' webhooks: the signing secret, and private hosts they may point at."""

    secret: str = Field(min_length=16, repr=False)
    allow: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> WebhookSection:
        self.webhook_settings()
        return self

    def webhook_settings(self) -> WebhookSettings:
        """The webhook channel's settings."""
        return WebhookSettings(
            secret=self.secret, timeout_s=self.timeout_s, allow=tuple(self.allow)
        )


class SmsSection(_Section):
    """Twilio's Messages API, for SMS."""

    account_sid: str = Field(min_length=1)
    auth_token: str = Field(min_length=1, repr=False)
    from_number: str = Field(pattern=r"^\+[1-9][0-9]{7,14}$")
    base_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")


class WebPushSection(_Section):
    """Web push: the VAPID ``subject`` (``mailto:`` or ``https:``) turns it on; the keys are
    made on the first start and kept in the database unless given."""

    subject: str = Field(pattern=r"^(mailto:|https://)")
    vapid_private_key: str | None = Field(default=None, repr=False)
    vapid_public_key: str | None = None
    allow: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both(self) -> WebPushSection:
        if (self.vapid_private_key is None) != (self.vapid_public_key is None):
            raise ValueError("give both vapid_private_key and vapid_public_key, or neither")
        return self


class NotifySettings(_Section):
    """The notification system of the node; see the module documentation.

    Attributes:
        categories: category -> channel -> on by default (users choose otherwise).
        throttle: the per-user throttle, or none.
        default_locale, default_time_zone: those of users who set none.
        unsubscribe_secret: the key of unsubscribe links (16 characters or more); made once
            and kept in the database when not given.
        public_url: the node's URL as users reach it, for links in emails (default:
            ``http://{host}:{port}``).
        templates: a directory of templates looked in before the built-in ones.
        api_keys: the bearer keys of ``POST /api/v1/notifications/events``.
        queue_limit: the ``notify`` queue's deliveries run at once on this node.
        max_attempts: a delivery's tries before it is given up.
        retry_backoff_s: a fixed wait between a delivery's tries; unset, the job queue's
            exponential backoff (about 17 s, then doubling).
        breaker_failures, breaker_cooldown_s: a channel's circuit breaker opens after that
            many transient failures in a row, for that long.
        smtp, webhook, sms, webpush: the channels beyond the in-app inbox; off when absent.
    """

    categories: dict[str, dict[str, bool]] = Field(
        default_factory=lambda: {name: dict(channels) for name, channels in CHAT_CATEGORIES.items()}
    )
    throttle: ThrottleSection | None = None
    default_locale: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    default_time_zone: str = "UTC"
    unsubscribe_secret: str | None = Field(default=None, min_length=16, repr=False)
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    templates: Path | None = None
    api_keys: list[str] = Field(default_factory=list, repr=False)
    queue_limit: int = Field(default=10, ge=1, le=10_000)
    max_attempts: int = Field(default=10, ge=1, le=100)
    retry_backoff_s: float | None = Field(default=None, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=60.0, gt=0)
    smtp: SmtpSection | None = None
    webhook: WebhookSection | None = None
    sms: SmsSection | None = None
    webpush: WebPushSection | None = None

    @field_validator("categories")
    @classmethod
    def _check_categories(
        cls, categories: dict[str, dict[str, bool]]
    ) -> dict[str, dict[str, bool]]:
        for name, channels in categories.items():
            unknown = sorted(set(channels) - set(CHANNELS))
            if unknown:
                raise ValueError(
                    f"category {name!r}: unknown channel {unknown[0]!r} "
                    f"(expected {', '.join(CHANNELS)})"
                )
            try:
                Category(channels)
            except InvalidConfig as error:
                raise ValueError(f"category {name!r}: {error}") from None
        return categories

    @field_validator("default_time_zone")
    @classmethod
    def _check_zone(cls, zone: str) -> str:
        check_time_zone(zone)  # ValueError names the zone
        return zone

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, directory: Path | None) -> Path | None:
        if directory is not None and not directory.is_dir():
            raise ValueError(f"{str(directory)!r} is not a directory")
        return directory

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: list[str]) -> list[str]:
        if any(len(key) < 16 for key in keys):
            raise ValueError("an API key must be 16 characters or more")
        return keys
