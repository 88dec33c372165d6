"""The bodies of the notification HTTP API (:mod:`trunkline.web.notify_api`), as pydantic
models. Request models check the JSON shape; the rules of each value (a category that is
configured, a time zone that exists, quiet hours that parse) are the notification system's,
answered as ``400 invalid_input`` naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from trunkline.notify import Delivery, EventResult, HistoryEntry, InboxItem

__all__ = [
    "AddressBody",
    "AddressOut",
    "DeliveriesQuery",
    "DeliveryList",
    "DeliveryOut",
    "DeliveryResultOut",
    "EventDeliveryList",
    "EventOut",
    "EventRequest",
    "HistoryOut",
    "InboxItemOut",
    "InboxList",
    "InboxQuery",
    "MarkedOut",
    "PreferenceIn",
    "PreferenceList",
    "PreferenceOut",
    "PreferencesRequest",
    "PushSubscriptionIn",
    "PushSubscriptionOut",
    "PushSubscriptionRemoval",
    "SettingsBody",
    "UnreadOut",
    "UnsubscribeQuery",
    "VapidKeyOut",
]

_ID_MAX = 2**63 - 1


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- events --------------------------------------------------------------------------------


class EventRequest(_Request):
    """An event to send: ``POST /notifications/events``."""

    category: str = Field(min_length=1, max_length=100, description="a configured category")
    recipients: list[int | str] = Field(
        min_length=1,
        max_length=1000,
        description="the users it is for, by id or username",
    )
    actor: int | str | None = Field(default=None, description="who caused it, by id or username")
    payload: dict[str, Any] = Field(default_factory=dict, description="data for the templates")
    critical: bool = Field(
        default=False, description="bypass preferences, quiet hours and the throttle"
    )
    send_at: AwareDatetime | None = Field(default=None, description="deliver no earlier")


class DeliveryResultOut(BaseModel):
    """What the send decided for one recipient x channel."""

    delivery_id: int
    user_id: int
    channel: str
    status: str
    reason: str | None = None
    scheduled_at: datetime | None = None


class EventOut(BaseModel):
    """A sent event: ``duplicate`` when an ``Idempotency-Key`` repeat returned the first
    send's result (status 200 rather than 201)."""

    event_id: int
    category: str
    duplicate: bool
    deliveries: list[DeliveryResultOut]

    @classmethod
    def from_result(cls, result: EventResult) -> EventOut:
        return cls(
            event_id=result.event_id,
            category=result.category,
            duplicate=result.duplicate,
            deliveries=[
                DeliveryResultOut(
                    delivery_id=d.delivery_id,
                    user_id=d.user_id,
                    channel=d.channel,
                    status=d.status,
                    reason=d.reason,
                    scheduled_at=d.scheduled_at,
                )
                for d in result.deliveries
            ],
        )


# -- deliveries ----------------------------------------------------------------------------


class HistoryOut(BaseModel):
    """A status a delivery reached."""

    status: str
    at: datetime
    detail: str | None = None

    @classmethod
    def from_entry(cls, entry: HistoryEntry) -> HistoryOut:
        return cls(status=entry.status, at=entry.at, detail=entry.detail)


class DeliveryOut(BaseModel):
    """A delivery and its history."""

    id: int
    event_id: int
    user_id: int
    category: str
    channel: str
    status: str
    reason: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    history: list[HistoryOut]

    @classmethod
    def from_delivery(cls, delivery: Delivery, history: list[HistoryEntry]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            user_id=delivery.user_id,
            category=delivery.category,
            channel=delivery.channel,
            status=delivery.status,
            reason=delivery.reason,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            history=[HistoryOut.from_entry(entry) for entry in history],
        )


class DeliveriesQuery(BaseModel):
    """A page of deliveries."""

    cursor: int | None = Field(default=None, ge=1, le=_ID_MAX, description="a next_cursor")
    limit: int = Field(default=50, ge=1, le=200, description="how many at most")


class DeliveryList(BaseModel):
    """One's deliveries, newest first."""

    deliveries: list[DeliveryOut]
    next_cursor: int | None


class EventDeliveryList(BaseModel):
    """An event's deliveries."""

    deliveries: list[DeliveryOut]


# -- preferences and settings ----------------------------------------------------------------


class PreferenceOut(BaseModel):
    """Whether a category reaches the user on a channel: ``enabled`` is what applies,
    ``chosen`` what the user set (``null``: the default applies)."""

    category: str
    channel: str
    enabled: bool
    default: bool
    chosen: bool | None


class PreferenceList(BaseModel):
    """Every configured category x channel."""

    preferences: list[PreferenceOut]


class PreferenceIn(_Request):
    """One choice; ``channel`` null: every channel of the category."""

    category: str = Field(min_length=1, max_length=100)
    channel: str | None = Field(default=None, min_length=1, max_length=50)
    enabled: bool


class PreferencesRequest(_Request):
    """Choices to store (all or none)."""

    preferences: list[PreferenceIn] = Field(min_length=1, max_length=200)


class SettingsBody(_Request):
    """A user's notification settings; ``null``: the node's default (no quiet hours)."""

    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone")
    locale: str | None = Field(default=None, max_length=35, description="like en or pt-BR")
    quiet_hours: dict[str, list[str]] | None = Field(
        default=None, description='weekday -> ranges: {"mon": ["22:00-24:00", "00:00-07:00"]}'
    )


# -- the inbox -----------------------------------------------------------------------------


class InboxQuery(BaseModel):
    """A page of the inbox."""

    status: Literal["unread", "read", "archived", "all"] = Field(
        default="all", description="all: every item not archived"
    )
    cursor: int | None = Field(default=None, ge=1, le=_ID_MAX, description="a next_cursor")
    limit: int = Field(default=50, ge=1, le=200, description="how many at most")


class InboxItemOut(BaseModel):
    """An item of the inbox."""

    id: int
    title: str | None
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    archived_at: datetime | None

    @classmethod
    def from_item(cls, item: InboxItem) -> InboxItemOut:
        return cls(
            id=item.id,
            title=item.title,
            body=item.body,
            data=dict(item.data),
            created_at=item.created_at,
            read_at=item.read_at,
            archived_at=item.archived_at,
        )


class InboxList(BaseModel):
    """A page of items, newest first, and the unread count."""

    items: list[InboxItemOut]
    next_cursor: int | None
    unread: int


class UnreadOut(BaseModel):
    """How many items are unread."""

    unread: int


class MarkedOut(BaseModel):
    """How many items changed, and the unread count after."""

    marked: int
    unread: int


# -- addresses -----------------------------------------------------------------------------


class AddressBody(_Request):
    """An address on a channel: an email address, a phone number (E.164), a webhook URL."""

    address: str = Field(min_length=1, max_length=2048)


class AddressOut(BaseModel):
    """A stored address."""

    channel: str
    address: str


class PushSubscriptionIn(_Request):
    """A browser's ``PushSubscription.toJSON()``."""

    model_config = ConfigDict(extra="ignore")  # expirationTime and what browsers add

    endpoint: str = Field(min_length=1, max_length=2048)
    keys: dict[str, str]


class PushSubscriptionOut(BaseModel):
    """A stored push subscription."""

    id: int
    endpoint: str


class PushSubscriptionRemoval(_Request):
    """The subscription to remove."""

    endpoint: str = Field(min_length=1, max_length=2048)


class VapidKeyOut(BaseModel):
    """The key browsers subscribe with (``applicationServerKey``), base64url."""

    public_key: str


class UnsubscribeQuery(BaseModel):
    """An unsubscribe link's query."""

    token: str = Field(min_length=1, max_length=1024)
