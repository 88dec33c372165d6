"""Clocks: the mock clock's virtual time, autojump and jump(); the system clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from trunkline import otp
from trunkline.otp import testing

# -- autojump --------------------------------------------------------------------------------------


async def test_an_hour_of_sleep_returns_at_once_an_hour_later(clock: otp.MockClock) -> None:
    started_monotonic, started_now = clock.monotonic(), clock.now()
    started_real = time.perf_counter()
    await asyncio.sleep(3600)
    assert clock.monotonic() - started_monotonic == 3600
    assert clock.now() - started_now == timedelta(hours=1)
    assert time.perf_counter() - started_real < 5


async def test_the_node_and_the_loop_run_on_the_mock_clock(clock: otp.MockClock) -> None:
    assert otp.current_node().clock is clock
    await asyncio.sleep(7)
    assert asyncio.get_running_loop().time() == clock.monotonic() == 7


async def test_timers_fire_in_deadline_order_at_their_virtual_times(
    clock: otp.MockClock,
) -> None:
    fired: list[tuple[str, float]] = []
    for label, delay_s in (("third", 3.0), ("first", 1.0), ("second", 2.0)):
        clock.call_later(delay_s, lambda label=label: fired.append((label, clock.monotonic())))
    await asyncio.sleep(10)
    assert fired == [("first", 1.0), ("second", 2.0), ("third", 3.0)]


async def test_concurrent_sleepers_wake_in_order_of_their_deadlines(
    clock: otp.MockClock,
) -> None:
    woke: list[float] = []

    async def sleeper(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        woke.append(clock.monotonic())

    await asyncio.gather(*(sleeper(d) for d in (30.0, 0.5, 10.0)))
    assert woke == [0.5, 10.0, 30.0]


async def test_asyncio_timeouts_run_on_virtual_time(clock: otp.MockClock) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(never, timeout=90)
    assert clock.monotonic() == 90


async def test_time_stands_still_while_there_is_work_to_do(clock: otp.MockClock) -> None:
    for _ in range(100):
        await asyncio.sleep(0)
    assert clock.monotonic() == 0


# -- jump() with autojump off ----------------------------------------------------------------------


def test_with_autojump_off_time_moves_only_by_jump() -> None:
    clock = otp.MockClock(autojump=False)

    async def main() -> None:
        sleeper = asyncio.create_task(asyncio.sleep(10))
        for _ in range(10):
            await asyncio.sleep(0)
        assert clock.monotonic() == 0
        clock.jump(9.5)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not sleeper.done()
        clock.jump(0.5)
        await sleeper
        assert clock.monotonic() == 10

    testing.run(main, clock=clock)


def test_jump_moves_now_and_monotonic_together() -> None:
    clock = otp.MockClock(datetime(2030, 6, 1, 12, tzinfo=UTC), autojump=False)
    clock.jump(90)
    assert clock.monotonic() == 90
    assert clock.now() == datetime(2030, 6, 1, 12, 1, 30, tzinfo=UTC)


def test_jump_by_zero_is_allowed() -> None:
    clock = otp.MockClock()
    clock.jump(0)
    assert clock.monotonic() == 0


# -- construction and validation -------------------------------------------------------------------


def test_mock_clock_starts_at_zero_on_new_years_day_2026_utc() -> None:
    clock = otp.MockClock()
    assert clock.monotonic() == 0
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is not None


def test_mock_clock_starts_at_the_given_aware_datetime() -> None:
    start = datetime(2030, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert otp.MockClock(start).now() == start


def test_mock_clock_rejects_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        otp.MockClock(datetime(2026, 1, 1))  # naive on purpose


def test_mock_clock_rejects_a_negative_autojump_threshold() -> None:
    with pytest.raises(ValueError, match="autojump_threshold_s"):
        otp.MockClock(autojump_threshold_s=-0.1)


def test_jump_rejects_going_back_in_time() -> None:
    clock = otp.MockClock()
    with pytest.raises(ValueError, match="forward"):
        clock.jump(-1)
    assert clock.monotonic() == 0


def test_call_later_before_the_clock_has_a_loop_raises() -> None:
    with pytest.raises(RuntimeError, match="new_event_loop"):
        otp.MockClock().call_later(1, print)


def test_mock_clock_repr_shows_the_time_and_autojump() -> None:
    assert repr(otp.MockClock(autojump=False)) == (
        "MockClock(now=2026-01-01T00:00:00+00:00, autojump=False)"
    )


# -- the system clock ------------------------------------------------------------------------------


@pytest.mark.real_clock
async def test_a_real_loop_runs_on_the_system_clock() -> None:
    clock = otp.current_node().clock
    assert isinstance(clock, otp.SystemClock)
    before = datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is not None
    assert before <= now <= datetime.now(UTC)
    loop_time = asyncio.get_running_loop().time()
    assert loop_time <= clock.monotonic() <= asyncio.get_running_loop().time()


@pytest.mark.real_clock
async def test_system_clock_call_later_runs_the_callback_on_the_loop() -> None:
    clock = otp.current_node().clock
    fired: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    clock.call_later(0, fired.set_result, "fired")
    assert await fired == "fired"
