"""What :meth:`~trunkline.notify.Notifier.send` returns: :class:`EventResult`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

__all__ = ["DeliveryResult", "EventResult"]


@dataclass(frozen=True)
class DeliveryResult:
    """One delivery an event made: ``status`` is ``queued`` (``reason`` ``quiet_hours``
    when held until ``scheduled_at``) or ``suppressed`` (``reason`` says why)."""

    delivery_id: int
    user_id: int
    channel: str
    status: str
    reason: str | None = None
    scheduled_at: datetime | None = None
    job_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "user_id": self.user_id,
            "channel": self.channel,
            "status": self.status,
            "reason": self.reason,
            "scheduled_at": None if self.scheduled_at is None else self.scheduled_at.isoformat(),
            "job_id": self.job_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryResult:
        at = data["scheduled_at"]
        return cls(
            data["delivery_id"],
            data["user_id"],
            data["channel"],
            data["status"],
            data["reason"],
            None if at is None else datetime.fromisoformat(at),
            data["job_id"],
        )


@dataclass(frozen=True)
class EventResult:
    """The result of a send: the event's id and its deliveries, in order (recipients in
    the order given, each one's channels in the category's order). ``duplicate`` is true
    when the idempotency key was known: this is then the first send's result, and nothing
    was stored."""

    event_id: int
    category: str
    deliveries: tuple[DeliveryResult, ...]
    duplicate: bool = False

    @property
    def queued(self) -> list[DeliveryResult]:
        """The deliveries queued (held ones included)."""
        return [d for d in self.deliveries if d.status == "queued"]

    @property
    def suppressed(self) -> list[DeliveryResult]:
        """The deliveries suppressed."""
        return [d for d in self.deliveries if d.status == "suppressed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "category": self.category,
            "deliveries": [d.to_json() for d in self.deliveries],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventResult:
        return cls(
            data["event_id"],
            data["category"],
            tuple(DeliveryResult.from_json(d) for d in data["deliveries"]),
        )

    def as_duplicate(self) -> EventResult:
        return replace(self, duplicate=True)
