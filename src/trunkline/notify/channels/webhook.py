"""The webhook channel: a signed JSON POST to a URL of the user's choosing.

The body (UTF-8 JSON, compact)::

    {"delivery": 42, "event": 7, "category": "chat.direct_message", "user": 3,
     "subject": "New message from ada", "text": "ada: are you there?", "data": {...}}

Headers: ``Content-Type: application/json``, ``Trunkline-Delivery: 42`` (the same on every
retry, for receivers to drop duplicates) and ``Trunkline-Signature: t=<unix>,v1=<hex>``, where
``v1`` is HMAC-SHA256, keyed with the channel's secret, over ``f"{t}."`` followed by the raw
body. Receivers check it with :func:`verify_signature`.

Only http and https URLs are sent to, never to a host that resolves to a private, loopback,
link-local, multicast or reserved address unless it is allow-listed, and redirects are not
followed. See ``docs/notify-channels.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime

from trunkline.otp import Clock, current_node

from ..channel import Envelope, PermanentFailure, Rendered, Sent, TransientFailure
from ._http import AllowList, body_excerpt, check_url
from .http_client import HttpChannel, HttpError

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "WebhookChannel",
    "WebhookSettings",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER = "Trunkline-Signature"
DELIVERY_HEADER = "Trunkline-Delivery"


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """How the webhook channel sends.

    Attributes:
        secret: the HMAC key of ``Trunkline-Signature``; at least 16 characters.
        timeout_s: the bound on one whole request (connect, send, response).
        allow: host names and networks (``"hooks.internal"``, ``"10.20.0.0/16"``) that may be
            sent to although they are not public addresses.
        user_agent: the ``User-Agent`` of the requests.
    """

    secret: str = field(repr=False)
    timeout_s: float = 10.0
    allow: tuple[str, ...] = ()
    user_agent: str = "trunkline-webhook/1"

    def __post_init__(self) -> None:
        if not isinstance(self.secret, str) or len(self.secret) < 16:
            raise ValueError("webhook secret: expected a string of at least 16 characters")
        if not self.timeout_s > 0:
            raise ValueError(f"webhook timeout_s: expected a positive number, got {self.timeout_s}")
        AllowList.parse(self.allow, option="webhook allow")


def signature_header(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``Trunkline-Signature`` header value of ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes,
    header: str,
    body: bytes | str,
    *,
    now: float | datetime,
    tolerance_s: float = 300,
) -> bool:
    """Whether a webhook's ``Trunkline-Signature`` header is valid for ``body``: signed with
    ``secret``, within ``tolerance_s`` of ``now`` (Unix seconds or an aware datetime).

    Compares in constant time. Any ``v1`` entry may match, so that a sender rotating its secret
    can sign with both. A malformed header is simply not valid.

    Example (an aiohttp receiver)::

        body = await request.read()
        if not verify_signature(SECRET, request.headers.get("Trunkline-Signature", ""),
                                body, now=time.time()):
            raise web.HTTPUnauthorized()
    """
    if isinstance(body, str):
        body = body.encode()
    if isinstance(now, datetime):
        now = now.timestamp()
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:
        # No early exit: the time taken does not depend on which entry matched.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched


class WebhookChannel(HttpChannel):
    """Sends each delivery as a signed JSON POST to ``envelope.address`` (a URL).

    Returns ``Sent(delivered=True)`` on a 2xx: the receiver has it.

    Used as an async context manager (or after :meth:`open`, until :meth:`aclose`), the
    channel keeps its connections alive between requests, one pool per checked target (a
    host resolving to other addresses gets a pool of its own); otherwise each request has a
    connection of its own. A node opens its channel when it starts and closes it when it
    stops::

        async with WebhookChannel(settings) as webhook:
            notifier = Notifier(database, config, channels=[webhook], registry=registry)
            ...

    Raises:
        TransientFailure: a timeout, a connection error, a 5xx or a 429.
        PermanentFailure: any other 4xx, a 3xx (redirects are not followed), a URL that is not
            http(s), a host that is not public and not allow-listed, data that is not JSON.
    """

    name = "webhook"

    def __init__(self, settings: WebhookSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self._allow = AllowList.parse(settings.allow, option="webhook allow")
        self._clock = clock
        self.timeout_s = settings.timeout_s

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        body = self._body(envelope, message)
        target = await check_url(envelope.address, self._allow)
        clock = self._clock or current_node().clock
        timestamp = int(clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.settings.user_agent,
            DELIVERY_HEADER: str(envelope.delivery_id),
            SIGNATURE_HEADER: signature_header(self.settings.secret, timestamp, body),
        }
        try:
            response = await self._post(target, body, headers)
        except TimeoutError:
            raise TransientFailure(
                f"webhook {target.host}: no response within {self.settings.timeout_s}s"
            ) from None
        except HttpError as error:
            raise TransientFailure(f"webhook {target.host}: {error}") from None
        except ValueError as error:
            raise PermanentFailure(f"webhook {target.host}: {error}") from None
        status, text = response.status, response.text()
        retry_after = response.headers.get("retry-after")
        return _outcome(target.host, status, text, retry_after)

    @staticmethod
    def _body(envelope: Envelope, message: Rendered) -> bytes:
        payload = {
            "delivery": envelope.delivery_id,
            "event": envelope.event_id,
            "category": envelope.category,
            "user": envelope.user_id,
            "subject": message.subject,
            "text": message.text,
            "data": dict(message.data),
        }
        try:
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as error:
            raise PermanentFailure(f"webhook payload is not JSON: {error}") from None


def _outcome(host: str, status: int, text: str, retry_after: str | None) -> Sent:
    if 200 <= status < 300:
        return Sent(delivered=True)
    detail = f"webhook {host} answered {status}: {body_excerpt(text)}".rstrip(": ")
    if status == 429 or status >= 500:
        if retry_after:
            detail += f" (Retry-After: {retry_after})"
        raise TransientFailure(detail)
    if 300 <= status < 400:
        raise PermanentFailure(f"webhook {host} answered {status}: redirects are not followed")
    raise PermanentFailure(detail)


def _mac(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
