"""Helpers for testing code built on trunkline, without real sleeps.

:func:`run` runs a coroutine on a fresh node whose loop runs on a :class:`MockClock`, and kills
whatever processes it left behind. The pytest plugin (``-p trunkline.otp.pytest_plugin``) does
the same for every ``async def`` test.

Example::

    def test_backoff() -> None:
        async def main() -> None:
            clock = current_node().clock
            before = clock.monotonic()
            await asyncio.sleep(3600)          # returns at once, an hour later
            assert clock.monotonic() - before == 3600

        run(main)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .clock import MockClock
from .node import new_event_loop, start_node
from .process import shutdown_node

__all__ = ["MockClock", "run", "wait_until"]

T = TypeVar("T")


def run(
    main: Callable[[], Coroutine[Any, Any, T]],
    *,
    clock: MockClock | None = None,
    real_clock: bool = False,
) -> T:
    """Run ``main()`` on a fresh loop and node, then kill every process it left running.

    Args:
        clock: the mock clock to run on (default: a new one with autojump).
        real_clock: run on a real event loop (uvloop) instead.
    """
    loop = new_event_loop() if real_clock else (clock or MockClock()).new_event_loop()
    try:
        return loop.run_until_complete(_on_fresh_node(main))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _on_fresh_node(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    node = start_node()
    try:
        return await main()
    finally:
        await shutdown_node(node)


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 5.0, interval_s: float = 0.001
) -> None:
    """Wait until ``condition()`` is true, checking every ``interval_s`` (on the node's clock).

    On a mock clock with autojump this costs no real time.

    Raises:
        TimeoutError: still false after ``timeout_s``.
    """
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the condition has no event to wait on
            await asyncio.sleep(interval_s)
