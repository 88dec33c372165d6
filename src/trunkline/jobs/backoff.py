"""How long a failed job waits before its next attempt, by default.

::

    delay_s = (15 + 2 ** a) * (1 + 0.1 * u)

where ``a`` is the attempt that failed (1 for the first; scaled onto 1..20 when
``max_attempts`` is above 20, so that a job allowed 100 attempts does not wait for years) and
``u`` is uniform in [0, 1): up to 10% of jitter, so that jobs that failed together do not all
come back together. Attempt 1 waits about 17 s, attempt 5 about 47 s, attempt 10 about 17
minutes, attempt 15 about 9 hours; the 20 attempts of the default span about 24 days.

A worker overrides it with its ``backoff`` option or method.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["exponential"]

_SCALE_TO = 20


def exponential(
    attempt: int,
    max_attempts: int = _SCALE_TO,
    *,
    base_s: float = 15.0,
    jitter: float = 0.1,
    rand: Callable[[], float] = random.random,
) -> float:
    """The default backoff in seconds after ``attempt`` (of ``max_attempts``) failed.

    Args:
        attempt: the attempt that failed, from 1.
        max_attempts: the job's; above 20, ``attempt`` is scaled onto 1..20.
        base_s: the constant part of every delay.
        jitter: the most, as a fraction of the delay, added at random.
        rand: a function returning floats in [0, 1) (to make tests exact).
    """
    if max_attempts > _SCALE_TO:
        attempt = max(1, round(attempt * _SCALE_TO / max_attempts))
    delay = base_s + 2.0 ** min(attempt, _SCALE_TO)
    return delay * (1.0 + jitter * rand())


def database_retry_s(failures: int, *, rand: Callable[[], float] = random.random) -> float:
    """How long a queue's processes wait before trying the database again, after
    ``failures`` failures in a row: 0.1 s, doubling, at most 5 s, plus up to 10% of jitter."""
    return min(5.0, 0.1 * 2.0 ** (max(1, failures) - 1)) * (1.0 + 0.1 * rand())
