"""The web push channel: an encrypted message to a browser's push subscription.

``envelope.address`` is the subscription as the browser's ``PushSubscription.toJSON()`` gives
it: ``{"endpoint": "https://...", "keys": {"p256dh": "...", "auth": "..."}}``. The payload,
JSON ``{"title": subject, "body": text, "data": data}``, is encrypted for the subscription
(RFC 8291, ``aes128gcm``, by pywebpush), the request is signed with the application's VAPID key
(RFC 8292, by py-vapid), and sent with the channels' own HTTP client.

The push service's answer decides: 201/202 sent; 404/410 :class:`AddressGone` (the user
unsubscribed, the subscription expired); 429, 5xx and timeouts transient; other 4xx permanent.
Endpoints go through the same guard as webhooks (public addresses only, unless allowed).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from trunkline.otp import Clock, current_node

from ..channel import AddressGone, Envelope, PermanentFailure, Rendered, Sent, TransientFailure
from ._http import AllowList, body_excerpt, check_url
from .http_client import HttpChannel, HttpError

__all__ = ["MAX_PAYLOAD_BYTES", "VapidKeys", "WebPushChannel", "generate_vapid_keys"]

MAX_PAYLOAD_BYTES = 3993
"""The largest JSON payload that fits the 4096 bytes push services accept once encrypted
(one aes128gcm record: 86 bytes of header, 16 of tag, 1 of padding delimiter)."""


@dataclass(frozen=True)
class VapidKeys:
    """A VAPID key pair, base64url without padding: ``private_key`` (the raw 32-byte scalar,
    for :class:`WebPushChannel`) and ``public_key`` (the uncompressed point, the
    ``applicationServerKey`` browsers subscribe with)."""

    private_key: str
    public_key: str


def generate_vapid_keys() -> VapidKeys:
    """A new P-256 key pair for VAPID."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(_b64url(private), _b64url(public))


class WebPushChannel(HttpChannel):
    """Sends each delivery as a web push message to the subscription in ``envelope.address``.

    Args:
        vapid_private_key: the application's VAPID private key: base64url raw (as
            :func:`generate_vapid_keys` makes), base64url DER, or PEM.
        vapid_subject: a contact for push services, ``mailto:ops@example.com`` or an https URL.
        ttl_s: how long the push service keeps a message for an offline browser.
        urgency: ``very-low``, ``low``, ``normal`` or ``high`` (RFC 8030).
        timeout_s: the bound on one whole request.
        token_lifetime_s: the VAPID token's ``exp``, from now (at most 24 h).
        allow: hosts and networks endpoints may point to although not public (tests, a
            private push service).

    Returns ``Sent(provider_id=<the push service's Location>, delivered=False)``.

    Used as an async context manager (or after :meth:`open`, until :meth:`aclose`), the
    channel keeps its connections to push services alive between messages, one pool per
    checked target, as :class:`~trunkline.notify.channels.WebhookChannel` does: a TLS
    handshake per push service, not per message. Otherwise each message has a connection of
    its own.

    Raises:
        AddressGone: the push service answered 404 or 410.
        TransientFailure: a timeout, a connection error, 429 or 5xx.
        PermanentFailure: another 4xx, a malformed subscription, a payload over
            :data:`MAX_PAYLOAD_BYTES`, an endpoint that is not public and not allowed.
    """

    name = "webpush"

    def __init__(
        self,
        vapid_private_key: str,
        vapid_subject: str,
        *,
        ttl_s: int = 24 * 3600,
        urgency: str = "normal",
        timeout_s: float = 10.0,
        token_lifetime_s: int = 12 * 3600,
        allow: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        try:
            key = vapid_private_key.strip()
            self._vapid = (
                Vapid02.from_pem(key.encode()) if "-----BEGIN" in key else Vapid02.from_string(key)
            )
        except Exception:
            raise ValueError(
                "webpush vapid_private_key: expected a P-256 key (base64url raw or DER, or PEM)"
            ) from None
        if not vapid_subject.startswith(("mailto:", "https://")):
            raise ValueError(
                f"webpush vapid_subject: expected mailto: or an https URL, got {vapid_subject!r}"
            )
        if urgency not in ("very-low", "low", "normal", "high"):
            raise ValueError(f"webpush urgency: expected very-low|low|normal|high, got {urgency!r}")
        if ttl_s < 0:
            raise ValueError(f"webpush ttl_s: expected >= 0, got {ttl_s}")
        if not 0 < token_lifetime_s <= 24 * 3600:
            raise ValueError(f"webpush token_lifetime_s: expected 1-86400, got {token_lifetime_s}")
        if not timeout_s > 0:
            raise ValueError(f"webpush timeout_s: expected a positive number, got {timeout_s}")
        self.vapid_subject = vapid_subject
        self.ttl_s = ttl_s
        self.urgency = urgency
        self.timeout_s = timeout_s
        self.token_lifetime_s = token_lifetime_s
        self._allow = AllowList.parse(allow, option="webpush allow")
        self._clock = clock

    @property
    def vapid_public_key(self) -> str:
        """The public key (base64url, uncompressed point) browsers subscribe with."""
        point: bytes = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64url(point)

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        subscription = _subscription(envelope.address)
        endpoint: str = subscription["endpoint"]
        payload = json.dumps(
            {"title": message.subject, "body": message.text, "data": dict(message.data)},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PermanentFailure(
                f"webpush: a payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}"
            )
        try:
            body: bytes = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError) as error:
            raise PermanentFailure(
                f"webpush: cannot encrypt for this subscription: {error}"
            ) from None
        target = await check_url(endpoint, self._allow)
        headers = {
            **self._authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.ttl_s),
            "Urgency": self.urgency,
        }
        try:
            response = await self._post(target, body, headers)
        except TimeoutError:
            raise TransientFailure(
                f"webpush {target.host}: no response within {self.timeout_s}s"
            ) from None
        except HttpError as error:
            raise TransientFailure(f"webpush {target.host}: {error}") from None
        except ValueError as error:
            raise PermanentFailure(f"webpush {target.host}: {error}") from None
        status, text = response.status, response.text()
        location = response.headers.get("location")
        if 200 <= status < 300:
            return Sent(provider_id=location, delivered=False)
        detail = f"webpush {target.host} answered {status}: {body_excerpt(text)}".rstrip(": ")
        if status in (404, 410):
            raise AddressGone(detail)
        if status == 429 or status >= 500:
            raise TransientFailure(detail)
        raise PermanentFailure(detail)

    def _authorization(self, endpoint: str) -> dict[str, str]:
        parts = urlsplit(endpoint)
        clock = self._clock or current_node().clock
        claims = {
            # The endpoint's origin (without any user info).
            "aud": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            "exp": int(clock.now().timestamp()) + self.token_lifetime_s,
            "sub": self.vapid_subject,
        }
        try:
            signed: dict[str, str] = self._vapid.sign(claims)
        except Exception as error:  # py-vapid's checks of the claims (an odd endpoint host)
            raise PermanentFailure(f"webpush: cannot sign for {claims['aud']}: {error}") from None
        return {"Authorization": signed["Authorization"]}


def _subscription(address: str) -> dict[str, Any]:
    try:
        subscription = json.loads(address)
    except ValueError:
        raise PermanentFailure("webpush: the address is not a subscription's JSON") from None
    keys = subscription.get("keys") if isinstance(subscription, dict) else None
    if (
        not isinstance(subscription, dict)
        or not isinstance(subscription.get("endpoint"), str)
        or not isinstance(keys, dict)
        or not all(isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth"))
    ):
        raise PermanentFailure(
            'webpush: expected {"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}'
        )
    return {"endpoint": subscription["endpoint"], "keys": {k: keys[k] for k in ("p256dh", "auth")}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
