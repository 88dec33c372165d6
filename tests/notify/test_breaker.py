"""The channels' circuit breaker, on the node's mock clock."""

from __future__ import annotations

import pytest

from trunkline.notify.breaker import BreakerState, CircuitBreaker
from trunkline.otp import MockClock, telemetry

EVENTS = [("trunkline", "notify", "breaker", state) for state in ("open", "half_open", "closed")]


@pytest.fixture
def clock() -> MockClock:
    return MockClock(autojump=False)


def state(breaker: CircuitBreaker) -> BreakerState:
    # Through a function: each reading is a new one, not narrowed by the previous assert.
    return breaker.state


def tripped(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()


async def test_opens_after_the_threshold_of_failures_in_a_row() -> None:
    breaker = CircuitBreaker("email", failure_threshold=3, cooldown_s=60)
    for _ in range(2):
        breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == 60.0


async def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("email", failure_threshold=3)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.failures == 2


async def test_half_open_after_the_cooldown_allows_a_single_trial(clock: MockClock) -> None:
    breaker = CircuitBreaker("sms", failure_threshold=2, cooldown_s=30)
    tripped(breaker)
    clock.jump(29.5)
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(0.5)
    clock.jump(0.5)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.retry_after_s() == 0.0
    assert breaker.allow()
    assert not breaker.allow()  # the trial is in flight
    assert breaker.retry_after_s() == 30.0


async def test_a_successful_trial_closes(clock: MockClock) -> None:
    breaker = CircuitBreaker("sms", failure_threshold=2, cooldown_s=30)
    tripped(breaker)
    clock.jump(30)
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.failures == 0
    assert all(breaker.allow() for _ in range(5))


async def test_a_failed_trial_opens_again_for_a_cooldown(clock: MockClock) -> None:
    breaker = CircuitBreaker("sms", failure_threshold=5, cooldown_s=30)
    tripped(breaker)
    clock.jump(30)
    assert breaker.allow()
    clock.jump(2)
    breaker.record_failure()  # one failure is enough in half-open
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_after_s() == 30.0
    clock.jump(30)
    assert breaker.allow()


async def test_a_trial_without_an_outcome_expires_after_a_cooldown(clock: MockClock) -> None:
    breaker = CircuitBreaker("webpush", failure_threshold=1, cooldown_s=10)
    tripped(breaker)
    clock.jump(10)
    assert breaker.allow()
    clock.jump(9)
    assert not breaker.allow()
    clock.jump(1)
    assert breaker.allow()  # the first trial's job never reported: another may try
    assert not breaker.allow()


async def test_state_changes_are_telemetry_events(clock: MockClock) -> None:
    breaker = CircuitBreaker("webhook", failure_threshold=2, cooldown_s=5)
    with telemetry.capture(EVENTS) as seen:
        tripped(breaker)
        breaker.record_failure()  # late, while open: no new event
        clock.jump(5)
        assert breaker.allow()
        breaker.record_failure()
        clock.jump(5)
        assert breaker.allow()
        breaker.record_success()
        breaker.record_success()  # already closed: no new event

    assert [(e.event[-1], dict(e.measurements), dict(e.metadata)) for e in seen] == [
        ("open", {"failures": 2, "cooldown_s": 5.0}, {"channel": "webhook"}),
        ("half_open", {"failures": 3}, {"channel": "webhook"}),
        ("open", {"failures": 4, "cooldown_s": 5.0}, {"channel": "webhook"}),
        ("half_open", {"failures": 4}, {"channel": "webhook"}),
        ("closed", {"failures": 0}, {"channel": "webhook"}),
    ]


def test_a_clock_can_be_given() -> None:
    clock = MockClock()
    breaker = CircuitBreaker("email", failure_threshold=1, cooldown_s=1, clock=clock)
    breaker.record_failure()
    assert not breaker.allow()
    clock.jump(1)
    assert breaker.allow()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "breaker email: failure_threshold"),
        ({"failure_threshold": 1.5}, "breaker email: failure_threshold"),
        ({"cooldown_s": 0}, "breaker email: cooldown_s"),
    ],
)
def test_options_are_checked(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("email", **options)  # type: ignore[arg-type]
