"""trunkline.notify: events in, deliveries out - preferences, quiet hours, throttles,
digests, templates, and channels (in-app inbox, email, web push, SMS, webhook), each delivery
a job of ``trunkline.jobs``. See ``docs/notify.md``."""

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

__all__ = [
    "AddressGone",
    "Channel",
    "DeliveryFailed",
    "Envelope",
    "PermanentFailure",
    "Rendered",
    "Sent",
    "TransientFailure",
]
