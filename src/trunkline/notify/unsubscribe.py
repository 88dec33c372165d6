"""One-click unsubscribe links: a token signed with HMAC-SHA256 for (user, category).

Every email carries ``List-Unsubscribe: <url?token=...>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 8058). :func:`unsubscribe` turns the category off **for
that user's email only**: the link came in an email, and the user's other channels (the
in-app inbox, push) are choices made elsewhere, which an email client's automatic
one-click POST should not undo.

A token is ``<base64url of "user_id:category">.<base64url of its HMAC-SHA256>``: it does not
expire (a link in an old email should still work) and changes nothing but one preference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from trunkline import db

from .config import NotifyConfig
from .exceptions import InvalidToken
from .preferences import set_preference

__all__ = ["EMAIL", "unsubscribe", "unsubscribe_token", "unsubscribe_url"]

EMAIL = "email"
"""The channel that unsubscribe links turn off."""


def unsubscribe_token(config: NotifyConfig, user_id: int, category: str) -> str:
    """The signed token of ``user_id`` leaving ``category``."""
    message = f"{user_id}:{category}".encode()
    signature = hmac.new(config.secret, message, hashlib.sha256).digest()
    return f"{_b64(message)}.{_b64(signature)}"


def unsubscribe_url(config: NotifyConfig, user_id: int, category: str) -> str:
    """The configured unsubscribe URL with the token of ``user_id`` and ``category``."""
    base = config.unsubscribe_url or ""
    token = quote(unsubscribe_token(config, user_id, category), safe="")
    return f"{base}{'&' if '?' in base else '?'}token={token}"


def read_token(config: NotifyConfig, token: str) -> tuple[int, str]:
    """The ``(user_id, category)`` of a token signed with the configuration's secret.

    Raises:
        InvalidToken: it is malformed, forged, or for a category the configuration lacks.
    """
    if not config.secret:
        raise InvalidToken("no unsubscribe_secret is configured")
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 1024:
        raise InvalidToken("malformed unsubscribe token")
    body, signature = token.split(".")
    try:
        message = _unb64(body)
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed unsubscribe token") from None
    expected = hmac.new(config.secret, message, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise InvalidToken("the unsubscribe token's signature does not match")
    user, _, category = message.decode("utf-8", "replace").partition(":")
    if not user.isdigit() or category not in config.categories:
        raise InvalidToken("the unsubscribe token names no known user and category")
    return int(user), category


async def unsubscribe(conn: db.Queryable, config: NotifyConfig, token: str) -> tuple[int, str]:
    """Turn off the email of the token's user for the token's category; return
    ``(user_id, category)``. Doing it twice is harmless.

    Raises:
        InvalidToken: a malformed or forged token; nothing is changed.
    """
    user_id, category = read_token(config, token)
    await set_preference(conn, user_id, category, EMAIL, False)
    return user_id, category


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
