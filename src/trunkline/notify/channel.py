"""The behaviour every delivery channel implements, and what passes through it.

A channel takes one rendered message to one address and says how it went. It knows nothing
of events, preferences or jobs: the notification pipeline decides who gets what, renders it,
and runs each delivery as a job of the job queue, which calls :meth:`Channel.send`. So a
channel is small and testable on its own, against a real server of its kind.

How a send ends decides what the queue does with the delivery's job:

- it returns a :class:`Sent`: the delivery is ``sent`` (``delivered`` too, where the provider
  says so at once);
- it raises :class:`TransientFailure` (a timeout, a 5xx, a refused connection): the job is
  retried with backoff, up to its attempts, then dead-lettered;
- it raises :class:`PermanentFailure` (a 4xx, an address the provider refuses): the delivery
  ``failed`` at once, no retry;
- it raises :class:`AddressGone` (a push subscription the push service no longer knows): as a
  permanent failure, and the address is removed so that nothing is sent to it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class Rendered:
    """A notification as its channel shows it: rendered from the category's templates in the
    recipient's locale.

    Attributes:
        subject: a title (email subject, push title, inbox title); ``None`` where the channel
            has none (SMS).
        text: the plain text (email text part, SMS body, push body, inbox body).
        html: the HTML part of an email, autoescaped; ``None`` elsewhere.
        data: structured data for channels that carry it (webhook payload, push data, inbox
            links): the event's payload and ids.
    """

    subject: str | None
    text: str
    html: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """Who a delivery goes to and what it is, for the channel.

    Attributes:
        delivery_id: the delivery's id (idempotency key towards providers that take one, and
            the ``Trunkline-Delivery`` header of webhooks).
        event_id: the event it comes from.
        user_id: the recipient.
        category: the event's category (``"chat.direct_message"``...).
        address: where, in the channel's terms: an email address, a phone number in E.164, a
            webhook URL, a push subscription's JSON, the user id for the in-app inbox.
        headers: extra headers a channel adds (email: ``List-Unsubscribe``...).
    """

    delivery_id: int
    event_id: int
    user_id: int
    category: str
    address: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """A send the channel completed: ``provider_id`` is the provider's id of the message
    where it gives one; ``delivered`` is true when the provider confirmed delivery at once."""

    provider_id: str | None = None
    delivered: bool = False


class DeliveryFailed(Exception):
    """A send that did not happen; see the module for what each kind makes of the job."""

    retry = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientFailure(DeliveryFailed):
    """Worth another try later: a timeout, a 5xx, a refused connection, a provider asking to
    slow down."""

    retry = True


class PermanentFailure(DeliveryFailed):
    """Trying again would fail the same way: a 4xx, a malformed address."""


class AddressGone(PermanentFailure):
    """The address no longer exists (a push subscription answered 404/410): remove it."""


@runtime_checkable
class Channel(Protocol):
    """A delivery channel. ``name`` is its key in preferences and configuration
    (``"inapp"``, ``"email"``, ``"webpush"``, ``"sms"``, ``"webhook"``)."""

    name: str

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        """Deliver ``message`` to ``envelope.address``.

        Raises:
            TransientFailure, PermanentFailure, AddressGone: see the module.
        """
        ...
