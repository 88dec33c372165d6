"""Session tokens: random, shown once, stored only as a hash.

A token is ``secrets.token_urlsafe(32)``: 32 random bytes, 43 URL-safe characters. The
database keeps its SHA-256 (hex), never the token: whoever reads the table (a backup, a
replica, an injection) cannot use what they read. A fast hash is right here, unlike for
passwords: the token has 256 bits of entropy, so there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["TOKEN_BYTES", "TOKEN_MAX_LENGTH", "hash_token", "new_token"]

TOKEN_BYTES = 32
TOKEN_MAX_LENGTH = 256
"""Longer strings are refused before any query: no token of ours is that long."""


def new_token() -> str:
    """A new random token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 of ``token``, as stored in ``chat_devices.token_hash``."""
    return hashlib.sha256(token.encode()).hexdigest()
