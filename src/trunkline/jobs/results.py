"""What a worker's ``perform`` may return besides a plain result.

- anything else (``None``, a value): the job is **completed**;
- :class:`Snooze`: run it again later; it goes back to ``scheduled``, and the snooze does
  not count as an attempt;
- :class:`Discard`: give up: ``discarded``, with the reason recorded, never retried;
- :class:`Cancel`: ``cancelled``, with the reason recorded, never retried.

Raising is a failed attempt: retried with backoff, or discarded after ``max_attempts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .exceptions import InvalidJob

__all__ = ["Cancel", "Discard", "Snooze"]


@dataclass(frozen=True, slots=True)
class Snooze:
    """Run the job again in ``seconds``; the attempt it used is given back.

    Raises:
        InvalidJob: ``seconds`` is not a finite number >= 0.
    """

    seconds: float

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s < 0:
            raise InvalidJob(f"Snooze needs seconds >= 0, not {s!r}")


@dataclass(frozen=True, slots=True)
class Discard:
    """Discard the job: it will not run again (unless retried by hand)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the job: it will not run again (unless retried by hand)."""

    reason: str = ""
