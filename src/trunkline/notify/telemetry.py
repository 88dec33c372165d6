"""The telemetry events of the notification system.

- ``("trunkline", "notify", "event", "received")``: measurements ``recipients``; metadata
  ``event_id``, ``category``, ``critical``, ``duplicate``.
- ``("trunkline", "notify", "delivery", <status>)``: measurements ``count`` (1); metadata
  ``delivery_id``, ``event_id``, ``user_id``, ``category``, ``channel``, ``reason``.

``<status>`` is ``queued`` (``reason`` ``quiet_hours`` when held), ``suppressed``,
``sent``, ``delivered``, ``retrying`` and ``failed``.
"""

from __future__ import annotations

from typing import Any

from trunkline import otp

__all__ = ["DELIVERY_EVENT", "EVENT_RECEIVED", "delivery_event", "emit_delivery"]

EVENT_RECEIVED = ("trunkline", "notify", "event", "received")
"""An event was sent (or repeated with a known idempotency key: ``duplicate``)."""

DELIVERY_EVENT = ("trunkline", "notify", "delivery")
"""The prefix of the delivery events; the last element is the status."""


def delivery_event(status: str) -> tuple[str, ...]:
    """The event of a delivery reaching ``status``."""
    return (*DELIVERY_EVENT, status)


def emit_delivery(status: str, **metadata: Any) -> None:
    """Execute the event of a delivery reaching ``status``."""
    event = delivery_event(status)
    if otp.telemetry.has_handlers(event):
        otp.telemetry.execute(event, {"count": 1}, metadata)
