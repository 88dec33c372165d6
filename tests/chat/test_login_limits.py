"""Login rate limiting on the node clock: per account, per address, bounded."""

from __future__ import annotations

import asyncio

import pytest

from trunkline.chat import LoginLimiter, TooManyAttempts


async def test_an_account_is_refused_after_its_failures_until_the_oldest_leaves_the_window() -> (
    None
):
    limiter = LoginLimiter(max_failures_per_account=3, window_s=60)
    limiter.attempt("ada", None)
    await asyncio.sleep(10)
    limiter.attempt("ada", None)
    limiter.attempt("ada", None)
    with pytest.raises(TooManyAttempts) as raised:
        limiter.attempt("ada", None)
    assert raised.value.scope == "account"
    assert raised.value.retry_after_s == pytest.approx(50)
    limiter.attempt("grace", None)  # another account is not limited
    await asyncio.sleep(49)
    with pytest.raises(TooManyAttempts) as raised:
        limiter.attempt("ada", None)
    assert raised.value.retry_after_s == pytest.approx(1)
    await asyncio.sleep(1)
    limiter.attempt("ada", None)  # the first failure left the window: one more
    with pytest.raises(TooManyAttempts) as raised:
        limiter.attempt("ada", None)
    assert raised.value.retry_after_s == pytest.approx(10)  # until the second leaves


async def test_an_address_is_limited_across_accounts() -> None:
    limiter = LoginLimiter(max_failures_per_account=100, max_failures_per_address=3, window_s=60)
    for name in ("ada", "grace", "edsger"):
        limiter.attempt(name, "203.0.113.7")
    with pytest.raises(TooManyAttempts) as raised:
        limiter.attempt("barbara", "203.0.113.7")
    assert raised.value.scope == "address"
    assert raised.value.retry_after_s == pytest.approx(60)
    limiter.attempt("barbara", "198.51.100.1")
    assert limiter.retry_after_s("barbara", "203.0.113.7") == pytest.approx(60)
    await asyncio.sleep(60)
    limiter.attempt("barbara", "203.0.113.7")


async def test_a_success_clears_the_account_and_takes_its_attempt_back_from_the_address() -> None:
    limiter = LoginLimiter(max_failures_per_account=2, max_failures_per_address=2, window_s=60)
    limiter.attempt("ada", "203.0.113.7")
    at = limiter.attempt("ada", "203.0.113.7")
    assert limiter.retry_after_s("ada", None) > 0
    limiter.succeeded("ada", "203.0.113.7", at)
    assert limiter.retry_after_s("ada", None) == 0
    # The address keeps its earlier failure: one more attempt, not two.
    limiter.attempt("grace", "203.0.113.7")
    with pytest.raises(TooManyAttempts) as raised:
        limiter.attempt("edsger", "203.0.113.7")
    assert raised.value.scope == "address"


async def test_a_refused_attempt_is_not_counted() -> None:
    limiter = LoginLimiter(max_failures_per_account=1, window_s=60)
    limiter.attempt("ada", "203.0.113.7")
    for _ in range(5):
        with pytest.raises(TooManyAttempts):
            limiter.attempt("ada", "203.0.113.7")
    assert len(limiter._addresses.times["203.0.113.7"]) == 1


async def test_attempts_in_flight_count_before_they_fail() -> None:
    # Concurrent guesses cannot all pass while the first are being hashed.
    limiter = LoginLimiter(max_failures_per_account=3)
    for _ in range(3):
        limiter.attempt("ada", None)
    with pytest.raises(TooManyAttempts):
        limiter.attempt("ada", None)


async def test_memory_is_bounded_by_forgetting_the_least_recently_used_keys() -> None:
    limiter = LoginLimiter(max_failures_per_account=1, max_keys=3)
    for name in ("a1", "a2", "a3"):
        limiter.attempt(name, None)
    with pytest.raises(TooManyAttempts):
        limiter.attempt("a1", None)  # refused, and a1 is not touched by it
    limiter.attempt("a4", "203.0.113.7")
    assert len(limiter) == 4  # three accounts, one address
    limiter.attempt("a1", None)  # the oldest, a1, was forgotten
    for index in range(1000):
        limiter.attempt(f"x{index}", f"10.0.{index // 256}.{index % 256}")
    assert len(limiter) == 6


async def test_reset_forgets_everything() -> None:
    limiter = LoginLimiter(max_failures_per_account=1)
    limiter.attempt("ada", "203.0.113.7")
    limiter.reset()
    assert len(limiter) == 0
    limiter.attempt("ada", "203.0.113.7")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_failures_per_account", 0),
        ("max_failures_per_address", 1.5),
        ("max_keys", -1),
        ("window_s", 0),
        ("window_s", "60"),
    ],
)
def test_bad_options_are_refused_by_name(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        LoginLimiter(**{option: value})  # type: ignore[arg-type]
