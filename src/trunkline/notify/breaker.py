"""A circuit breaker per channel: stop hammering a provider that is down.

After ``failure_threshold`` transient failures in a row the breaker *opens*: the delivery job
asks :meth:`CircuitBreaker.allow` before a send and, while it is refused, snoozes the job for
:meth:`~CircuitBreaker.retry_after_s` instead of spending one of its attempts. After
``cooldown_s`` it is *half-open*: one trial send is allowed; its success *closes* the breaker,
its failure opens it again for another cooldown. The breaker never calls a channel itself.

Only transient failures are evidence that a provider is down: a permanent failure is about one
address or message, and is neither recorded nor a reason to open.

Telemetry (measurements ``{"failures": n}``, metadata ``{"channel": name}``):

======================================================  =========================================
``("trunkline", "notify", "breaker", "open")``          opened, after the threshold or a failed
                                                        trial; also ``cooldown_s`` measured
``("trunkline", "notify", "breaker", "half_open")``     the cooldown is over, a trial is allowed
``("trunkline", "notify", "breaker", "closed")``        closed again by a success
======================================================  =========================================
"""

from __future__ import annotations

from enum import StrEnum

from trunkline.otp import Clock, current_node, telemetry

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    """Sends go through; failures are counted."""
    OPEN = "open"
    """Sends are refused until the cooldown is over."""
    HALF_OPEN = "half_open"
    """One trial send goes through; others wait for its outcome."""


class CircuitBreaker:
    """One channel's breaker.

    Args:
        name: the channel it guards, the ``channel`` of its telemetry.
        failure_threshold: transient failures in a row that open it.
        cooldown_s: how long it stays open before a trial; also how long a trial may go
            without an outcome before another is allowed (a job that died mid-send).
        clock: defaults to the current node's clock.

    Example::

        breaker = CircuitBreaker("email")
        if not breaker.allow():
            return Snooze(breaker.retry_after_s())
        try:
            sent = await channel.send(envelope, message)
        except TransientFailure:
            breaker.record_failure()
            raise
        breaker.record_success()
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        cooldown_s: float = 60.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(
                f"breaker {name}: failure_threshold must be an integer >= 1, "
                f"got {failure_threshold!r}"
            )
        if not cooldown_s > 0:
            raise ValueError(f"breaker {name}: cooldown_s must be > 0, got {cooldown_s!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = float(cooldown_s)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        # OPEN: when the cooldown ends. HALF_OPEN: when the trial in flight expires, or None
        # while no trial is in flight.
        self._until: float | None = None

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value}, failures={self._failures})"

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cooldown is over reads half-open)."""
        self._advance()
        return self._state

    @property
    def failures(self) -> int:
        """Transient failures in a row so far."""
        return self._failures

    def allow(self) -> bool:
        """Whether a send may go now. In half-open, true once: for the trial."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and (
            self._until is None or self._now() >= self._until
        ):
            self._until = self._now() + self.cooldown_s
            return True
        return False

    def retry_after_s(self) -> float:
        """How long until :meth:`allow` may say yes: 0 when it would now."""
        self._advance()
        if self._state is BreakerState.CLOSED or self._until is None:
            return 0.0
        return max(0.0, self._until - self._now())

    def record_success(self) -> None:
        """A send went through: close (from any state) and forget the failures."""
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._until = None
            self._emit("closed")

    def record_failure(self) -> None:
        """A send failed transiently: count it; open at the threshold, or again after a
        failed trial. Failures while open (sends begun before it opened) extend nothing."""
        self._advance()
        self._failures += 1
        tripped = self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        if tripped or self._state is BreakerState.HALF_OPEN:
            self._open()

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._until = self._now() + self.cooldown_s
        self._emit("open", cooldown_s=self.cooldown_s)

    def _advance(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._until is not None
            and self._now() >= self._until
        ):
            self._state = BreakerState.HALF_OPEN
            self._until = None
            self._emit("half_open")

    def _now(self) -> float:
        return (self._clock or current_node().clock).monotonic()

    def _emit(self, state: str, **measurements: float) -> None:
        telemetry.execute(
            ("trunkline", "notify", "breaker", state),
            {"failures": self._failures, **measurements},
            {"channel": self.name},
        )
