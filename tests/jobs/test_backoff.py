"""The default backoff: exponential, with a constant part and jitter, scaled for long jobs."""

from __future__ import annotations

import pytest

from trunkline.jobs import backoff


@pytest.mark.parametrize(
    ("attempt", "delay_s"), [(1, 17), (2, 19), (5, 47), (10, 1039), (20, 2**20 + 15)]
)
def test_without_jitter_it_is_15_plus_two_to_the_attempt(attempt: int, delay_s: float) -> None:
    assert backoff.exponential(attempt, rand=lambda: 0.0) == delay_s


def test_jitter_adds_up_to_ten_percent() -> None:
    assert backoff.exponential(5, rand=lambda: 0.999) == pytest.approx(47 * 1.0999)
    delays = {backoff.exponential(5) for _ in range(50)}
    assert all(47 <= d < 47 * 1.1 for d in delays)
    assert len(delays) > 1


def test_attempts_of_a_job_with_many_are_scaled_onto_twenty() -> None:
    exact = backoff.exponential(10, 20, rand=lambda: 0.0)
    assert backoff.exponential(50, 100, rand=lambda: 0.0) == exact
    assert backoff.exponential(100, 100, rand=lambda: 0.0) == backoff.exponential(
        20, rand=lambda: 0.0
    )


def test_database_retries_double_from_a_tenth_of_a_second_up_to_five() -> None:
    delays = [backoff.database_retry_s(n, rand=lambda: 0.0) for n in range(1, 10)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
