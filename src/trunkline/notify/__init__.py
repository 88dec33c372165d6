"""trunkline.notify: events in, deliveries out - preferences, quiet hours, throttles,
digests, templates, and channels (in-app inbox, email, web push, SMS, webhook), each delivery
a job of ``trunkline.jobs``. See ``docs/notify.md``.

::

    from trunkline import jobs, notify

    config = notify.NotifyConfig(
        categories={"chat.mention": notify.Category({"inapp": True, "email": True})},
        unsubscribe_secret=secret, unsubscribe_url="https://example.com/notify/unsubscribe",
    )
    registry = jobs.WorkerRegistry()
    notifier = notify.Notifier(database, config, channels=[email], registry=registry)
    await notifier.send("chat.mention", [7], actor=3, payload={"text": "hi @ada"})
"""

from .addresses import (
    PushSubscription,
    add_push_subscription,
    get_address,
    get_addresses,
    list_push_subscriptions,
    remove_address,
    remove_push_subscription,
    set_address,
)
from .channel import (
    AddressGone,
    Channel,
    DeliveryFailed,
    Envelope,
    PermanentFailure,
    Rendered,
    Sent,
    TransientFailure,
)
from .config import Category, Digest, Fallback, NotifyConfig, Throttle
from .deliver import WORKER, DeliverWorker
from .deliveries import Delivery, HistoryEntry, delivery_history, get_delivery, list_deliveries
from .digests import DIGEST_EVENT, DIGEST_WORKER, DigestWorker, digest_event
from .exceptions import (
    InvalidConfig,
    InvalidNotification,
    InvalidToken,
    NotifyError,
    TemplateMissing,
    UnknownCategory,
)
from .fallback import FALLBACK_EVENT, fallback_event
from .inbox import (
    InboxChannel,
    InboxItem,
    InboxPage,
    archive,
    list_inbox,
    mark_all_read,
    mark_read,
    unread_count,
)
from .migrations import COMPONENT, MIGRATIONS, STATUSES
from .notifier import Breaker, Notifier
from .open_channels import OpenChannels
from .preferences import (
    UserSettings,
    get_preferences,
    get_user_settings,
    set_preference,
    set_user_settings,
)
from .quiet_hours import WEEKDAYS, QuietHours
from .results import DeliveryResult, EventResult
from .telemetry import DELIVERY_EVENT, EVENT_RECEIVED, delivery_event
from .templates import BUILTIN, Templates
from .unsubscribe import unsubscribe, unsubscribe_token, unsubscribe_url

__all__ = [
    "BUILTIN",
    "COMPONENT",
    "DELIVERY_EVENT",
    "DIGEST_EVENT",
    "DIGEST_WORKER",
    "EVENT_RECEIVED",
    "FALLBACK_EVENT",
    "MIGRATIONS",
    "STATUSES",
    "WEEKDAYS",
    "WORKER",
    "AddressGone",
    "Breaker",
    "Category",
    "Channel",
    "DeliverWorker",
    "Delivery",
    "DeliveryFailed",
    "DeliveryResult",
    "Digest",
    "DigestWorker",
    "Envelope",
    "EventResult",
    "Fallback",
    "HistoryEntry",
    "InboxChannel",
    "InboxItem",
    "InboxPage",
    "InvalidConfig",
    "InvalidNotification",
    "InvalidToken",
    "Notifier",
    "NotifyConfig",
    "NotifyError",
    "OpenChannels",
    "PermanentFailure",
    "PushSubscription",
    "QuietHours",
    "Rendered",
    "Sent",
    "TemplateMissing",
    "Templates",
    "Throttle",
    "TransientFailure",
    "UnknownCategory",
    "UserSettings",
    "add_push_subscription",
    "archive",
    "delivery_event",
    "delivery_history",
    "digest_event",
    "fallback_event",
    "get_address",
    "get_addresses",
    "get_delivery",
    "get_preferences",
    "get_user_settings",
    "list_deliveries",
    "list_inbox",
    "list_push_subscriptions",
    "mark_all_read",
    "mark_read",
    "remove_address",
    "remove_push_subscription",
    "set_address",
    "set_preference",
    "set_user_settings",
    "unread_count",
    "unsubscribe",
    "unsubscribe_token",
    "unsubscribe_url",
]
