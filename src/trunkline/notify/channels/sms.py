"""The SMS channel: a text to a phone number in E.164, through a provider.

:class:`SmsChannel` validates the number and fits the text; an :class:`SmsProvider` sends it.
One provider ships: :class:`TwilioProvider`, over Twilio's Messages API.

Text longer than ``max_chars`` (1600 by default: Twilio's limit, about ten concatenated
segments) is cut to ``max_chars - 1`` characters followed by ``…``, rather than failing the
delivery: an SMS points at the full notification elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Protocol, runtime_checkable

import aiohttp

from ..channel import Envelope, PermanentFailure, Rendered, Sent, TransientFailure
from ._http import body_excerpt

__all__ = ["E164", "SmsChannel", "SmsProvider", "TwilioProvider"]

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
"""A phone number in E.164: ``+``, then 8 to 15 digits, the first not 0."""


@runtime_checkable
class SmsProvider(Protocol):
    """Sends one text. ``to`` is a valid E.164 number and ``text`` fits the provider.

    Returns the provider's message id in a :class:`Sent`; raises
    :class:`TransientFailure` or :class:`PermanentFailure` as a channel does.
    """

    async def send_sms(self, to: str, text: str, *, delivery_id: int) -> Sent: ...


class SmsChannel:
    """Sends ``message.text`` to ``envelope.address``, a phone number in E.164.

    Raises:
        PermanentFailure: a number that is not E.164, an empty text, or the provider's
            refusal.
        TransientFailure: the provider's, as it says.
    """

    name = "sms"

    def __init__(self, provider: SmsProvider, *, max_chars: int = 1600) -> None:
        if max_chars < 2:
            raise ValueError(f"sms max_chars: expected at least 2, got {max_chars}")
        self.provider = provider
        self.max_chars = max_chars

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        number = envelope.address
        if not E164.fullmatch(number):
            raise PermanentFailure(
                f"sms: {number!r} is not a phone number in E.164 (+ and 8 to 15 digits)"
            )
        text = message.text.strip()
        if not text:
            raise PermanentFailure("sms: the message has no text")
        if len(text) > self.max_chars:
            text = text[: self.max_chars - 1].rstrip() + "…"
        return await self.provider.send_sms(number, text, delivery_id=envelope.delivery_id)


class TwilioProvider:
    """Twilio's Messages API: ``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``
    with form fields ``To``, ``From``, ``Body``, authenticated with the account SID and auth
    token.

    Returns ``Sent(provider_id=<the message sid>, delivered=False)``: Twilio has queued it.

    Raises:
        TransientFailure: a timeout, a connection error, a 429 or a 5xx.
        PermanentFailure: another 4xx, with Twilio's error code and message
            (``twilio error 21211: Invalid 'To' Phone Number``).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        base_url: str = "https://api.twilio.com",
        timeout_s: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("twilio account_sid and auth_token: both are required")
        if not E164.fullmatch(from_number):
            raise ValueError(
                f"twilio from_number: expected E.164 (+ and digits), got {from_number!r}"
            )
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"twilio base_url: expected an http(s) URL, got {base_url!r}")
        if not timeout_s > 0:
            raise ValueError(f"twilio timeout_s: expected a positive number, got {timeout_s}")
        self.account_sid = account_sid
        self.from_number = from_number
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.timeout_s = timeout_s
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._authorization = f"Basic {credentials}"

    def __repr__(self) -> str:
        return f"TwilioProvider(account_sid={self.account_sid!r}, from_number={self.from_number!r})"

    async def send_sms(self, to: str, text: str, *, delivery_id: int) -> Sent:
        form = {"To": to, "From": self.from_number, "Body": text}
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s), trust_env=False
                ) as session,
                session.post(
                    self.url, data=form, headers={"Authorization": self._authorization}
                ) as response,
            ):
                status = response.status
                text = await response.text(errors="replace")
        except TimeoutError:
            raise TransientFailure(f"twilio: no response within {self.timeout_s}s") from None
        except aiohttp.ClientError as error:
            raise TransientFailure(f"twilio: {error}") from None
        if 200 <= status < 300:
            sid = _json_field(text, "sid")
            if not isinstance(sid, str):
                raise TransientFailure(f"twilio answered {status} without a message sid")
            return Sent(provider_id=sid, delivered=False)
        code, why = _json_field(text, "code"), _json_field(text, "message")
        detail = (
            f"twilio error {code}: {why} (HTTP {status})"
            if code is not None or why is not None
            else f"twilio answered {status}: {body_excerpt(text)}"
        )
        if status == 429 or status >= 500:
            raise TransientFailure(detail)
        raise PermanentFailure(detail)


def _json_field(text: str, key: str) -> object:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document.get(key) if isinstance(document, dict) else None
