"""Login rate limiting: failures per account and per address, in a sliding window.

A :class:`LoginLimiter` counts failed logins per account (the normalized username, whether
or not it has an account, so the limit tells nothing about which exist) and per client
address. Once a key has ``max_failures`` failures within the last ``window_s`` seconds, the
next attempt is refused with :class:`~trunkline.chat.TooManyAttempts` before any password is
checked, until the oldest of those failures leaves the window (``retry_after_s``). A
successful login clears its account's failures; the address keeps its own (otherwise one
valid account would let an attacker reset the limit of their address).

Each attempt counts as a failure from the moment it begins, and a success takes it back:
many concurrent guesses cannot all slip through while the first are still being hashed.

**Per node**: the counts live in this object's memory, on the node that holds it, and are
lost when it restarts. Behind a load balancer spreading logins over ``n`` nodes, an attacker
gets at most ``n`` times the limit; the cost of each guess (argon2) stays. Memory is bounded:
each kind of key keeps at most ``max_keys`` keys, forgetting the least recently used.

Time is the node clock's monotonic time (``otp.current_node().clock``), so a
:class:`~trunkline.otp.MockClock` drives it in tests.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, deque

from trunkline import otp

from .exceptions import TooManyAttempts

__all__ = ["LoginLimiter"]


class _Window:
    """The failures of one kind of key: key -> times of its recent failures, LRU order."""

    __slots__ = ("max_failures", "max_keys", "scope", "times", "window_s")

    def __init__(self, scope: str, max_failures: int, window_s: float, max_keys: int) -> None:
        self.scope = scope
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self.times: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after_s(self, key: str, now: float) -> float:
        times = self.times.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self.times[key]
            return 0.0
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window_s - now

    def add(self, key: str, now: float) -> None:
        times = self.times.get(key)
        if times is None:
            times = self.times[key] = deque(maxlen=self.max_failures)
            while len(self.times) > self.max_keys:
                self.times.popitem(last=False)
        else:
            self.times.move_to_end(key)
        times.append(now)

    def take_back(self, key: str, at: float) -> None:
        times = self.times.get(key)
        if times is not None:
            with contextlib.suppress(ValueError):  # it left the window meanwhile
                times.remove(at)


class LoginLimiter:
    """Counts failed logins per account and per address; see the module.

    Hold one per node (the server does) and pass it to ``login(..., limiter=...)``.

    Args:
        max_failures_per_account: failures allowed per account within the window (5).
        max_failures_per_address: failures allowed per address within the window (20).
        window_s: the sliding window, in seconds (15 minutes).
        max_keys: how many accounts, and how many addresses, it remembers at most (10,000
            each; the least recently used are forgotten first).

    Raises:
        ValueError: an option below 1 (or a window not above 0), naming it.

    Example::

        limiter = LoginLimiter(max_failures_per_account=5, window_s=900)
        user, token, device = await login(database, "ada", password, limiter=limiter,
                                          address=request.remote)
    """

    __slots__ = ("_accounts", "_addresses")

    def __init__(
        self,
        *,
        max_failures_per_account: int = 5,
        max_failures_per_address: int = 20,
        window_s: float = 15 * 60.0,
        max_keys: int = 10_000,
    ) -> None:
        for name, value in (
            ("max_failures_per_account", max_failures_per_account),
            ("max_failures_per_address", max_failures_per_address),
            ("max_keys", max_keys),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"LoginLimiter {name}: an integer >= 1, got {value!r}")
        if not isinstance(window_s, int | float) or not window_s > 0:
            raise ValueError(f"LoginLimiter window_s: seconds > 0, got {window_s!r}")
        self._accounts = _Window("account", max_failures_per_account, float(window_s), max_keys)
        self._addresses = _Window("address", max_failures_per_address, float(window_s), max_keys)

    def attempt(self, account: str | None, address: str | None) -> float:
        """Begin an attempt for ``account`` from ``address`` (either may be ``None``: not
        limited by it), counted as a failure until :meth:`succeeded` takes it back.

        Returns:
            the attempt's time, to give to :meth:`succeeded`.

        Raises:
            TooManyAttempts: either key is over its limit; nothing is counted.
        """
        now = otp.current_node().clock.monotonic()
        for window, key in ((self._accounts, account), (self._addresses, address)):
            if key is not None:
                retry_after_s = window.retry_after_s(key, now)
                if retry_after_s > 0:
                    raise TooManyAttempts(window.scope, retry_after_s)
        if account is not None:
            self._accounts.add(account, now)
        if address is not None:
            self._addresses.add(address, now)
        return now

    def succeeded(self, account: str | None, address: str | None, at: float) -> None:
        """The attempt begun at ``at`` succeeded: clear the account's failures, and take
        the attempt back from the address's."""
        if account is not None:
            self._accounts.times.pop(account, None)
        if address is not None:
            self._addresses.take_back(address, at)

    def retry_after_s(self, account: str | None, address: str | None) -> float:
        """Seconds until ``account`` from ``address`` may attempt again (0: now)."""
        now = otp.current_node().clock.monotonic()
        return max(
            self._accounts.retry_after_s(account, now) if account is not None else 0.0,
            self._addresses.retry_after_s(address, now) if address is not None else 0.0,
        )

    def reset(self) -> None:
        """Forget every failure."""
        self._accounts.times.clear()
        self._addresses.times.clear()

    def __len__(self) -> int:
        """How many keys (accounts and addresses) it remembers."""
        return len(self._accounts.times) + len(self._addresses.times)
