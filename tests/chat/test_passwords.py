"""argon2id hashes, off the event loop."""

from __future__ import annotations

import threading
from typing import Literal

import argon2
import pytest
from argon2 import profiles

from trunkline.chat import Passwords
from trunkline.chat.passwords import DEFAULT_PARAMETERS

CHEAP = Passwords(profiles.CHEAPEST)


def test_the_default_is_argon2_cffis_recommendation() -> None:
    assert Passwords().parameters == DEFAULT_PARAMETERS == argon2.PasswordHasher()._parameters
    assert DEFAULT_PARAMETERS.type is argon2.Type.ID
    assert (DEFAULT_PARAMETERS.time_cost, DEFAULT_PARAMETERS.memory_cost) == (3, 65536)


async def test_a_hash_verifies_its_password_only() -> None:
    password_hash = await CHEAP.hash("correct horse battery")
    assert password_hash.startswith("$argon2id$")
    assert "correct horse battery" not in password_hash
    assert await CHEAP.verify(password_hash, "correct horse battery")
    assert not await CHEAP.verify(password_hash, "correct horse batterY")
    assert await CHEAP.hash("correct horse battery") != password_hash  # salted


async def test_a_malformed_hash_verifies_nothing_and_needs_a_rehash() -> None:
    assert not await CHEAP.verify("not a hash", "correct horse battery")
    assert CHEAP.needs_rehash("not a hash")


async def test_passwords_are_compared_after_nfkc() -> None:
    password_hash = await CHEAP.hash("\uff50\uff41\uff53\uff53word")  # full-width "pass"
    assert await CHEAP.verify(password_hash, "password")


async def test_a_hash_of_other_parameters_verifies_but_needs_a_rehash() -> None:
    other = Passwords(argon2.Parameters(argon2.Type.ID, 19, 16, 16, 2, 64, 1))
    password_hash = await CHEAP.hash("correct horse battery")
    assert await other.verify(password_hash, "correct horse battery")
    assert other.needs_rehash(password_hash)
    assert not CHEAP.needs_rehash(password_hash)


async def test_hashing_and_verifying_run_off_the_event_loop_thread() -> None:
    seen: list[int] = []
    hasher = Passwords(profiles.CHEAPEST)
    inner = hasher._hasher

    class Recording(argon2.PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            seen.append(threading.get_ident())
            return inner.hash(password)

        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            seen.append(threading.get_ident())
            return inner.verify(hash, password)

    hasher._hasher = Recording.from_parameters(profiles.CHEAPEST)
    password_hash = await hasher.hash("correct horse battery")
    assert await hasher.verify(password_hash, "correct horse battery")
    await hasher.verify_dummy("correct horse battery")
    assert len(seen) == 4  # hash, verify, the dummy's hash, the dummy's verify
    assert threading.get_ident() not in seen


def test_only_argon2id_parameters_are_accepted() -> None:
    with pytest.raises(ValueError, match="argon2id"):
        Passwords(argon2.Parameters(argon2.Type.I, 19, 16, 16, 2, 64, 1))
    with pytest.raises(TypeError, match="parameters"):
        Passwords({"time_cost": 1})  # type: ignore[arg-type]
