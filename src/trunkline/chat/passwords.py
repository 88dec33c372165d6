"""Password hashes: argon2id, computed off the event loop.

A :class:`Passwords` hashes and verifies with one set of argon2 parameters. The default is
argon2-cffi's recommendation, RFC 9106's second choice ("low memory"): argon2id, 3 passes over
64 MiB with 4 lanes, a 16-byte salt and a 32-byte hash - about 0.2 s of CPU per hash here,
which is the point: each guess costs an attacker as much. Hashing holds no lock on the event
loop: it runs in a thread (argon2 releases the GIL), so other connections are served
meanwhile.

Each hash carries its own parameters (``$argon2id$v=19$m=65536,t=3,p=4$...``), so a hash made
with older parameters still verifies; :meth:`Passwords.needs_rehash` says when it should be
replaced, which ``login`` does when the password is at hand.

Passwords are NFKC-normalized before hashing (as NIST SP 800-63B advises), so the same
password typed on keyboards that produce different code points for it still matches.

Tests use cheaper parameters, explicitly::

    from argon2 import profiles
    cheap = Passwords(profiles.CHEAPEST)
    user = await register(database, "ada", "correct horse", "Ada", passwords=cheap)
"""

from __future__ import annotations

import asyncio
import unicodedata

import argon2
from argon2 import PasswordHasher, profiles

__all__ = ["DEFAULT_PARAMETERS", "Passwords"]

DEFAULT_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
"""argon2id, t=3, m=64 MiB, p=4, 16-byte salt, 32-byte hash: argon2-cffi's default."""


class Passwords:
    """Hashes and verifies passwords with one set of argon2 parameters.

    Args:
        parameters: an ``argon2.Parameters`` (``argon2.profiles`` has some); the default is
            :data:`DEFAULT_PARAMETERS`. Only the type argon2id is accepted.

    Raises:
        TypeError: ``parameters`` is not an ``argon2.Parameters``.
        ValueError: parameters of another argon2 type than argon2id.
    """

    __slots__ = ("_dummy", "_hasher", "parameters")

    def __init__(self, parameters: argon2.Parameters = DEFAULT_PARAMETERS) -> None:
        if not isinstance(parameters, argon2.Parameters):
            raise TypeError(f"parameters: an argon2.Parameters, got {parameters!r}")
        if parameters.type is not argon2.Type.ID:
            raise ValueError(f"parameters: argon2id only, got {parameters.type.name}")
        self.parameters = parameters
        self._hasher = PasswordHasher.from_parameters(parameters)
        self._dummy: str | None = None

    def __repr__(self) -> str:
        p = self.parameters
        return f"Passwords(t={p.time_cost}, m={p.memory_cost} KiB, p={p.parallelism})"

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password`` (a new random salt each time), in PHC format."""
        return await asyncio.to_thread(self._hasher.hash, _normalize(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; false for a malformed hash too."""
        return await asyncio.to_thread(self._verify, password_hash, _normalize(password))

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a verification that fails: for a user who does not exist, so
        that a wrong username takes as long to refuse as a wrong password."""
        if self._dummy is None:
            self._dummy = await self.hash("not the password of anyone")
        await self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than these."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (argon2.exceptions.InvalidHashError, ValueError):
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerificationError:  # VerifyMismatchError is one
            return False
        except argon2.exceptions.InvalidHashError:
            return False


def _normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)
