"""A wait for tests that run a queue on the mock clock: ``eventually(check, what)``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from trunkline import db, otp


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout_s: float = 60.0
) -> None:
    """Wait until ``check()`` is true: checked again after each statement the database
    runs (a queue's work is statements), or after a second of virtual time without one.

    Each idle wait costs a jump of the mock clock (the test's idle threshold of real time),
    so this looks as rarely as it can while still seeing a change as soon as it is written.

    Raises:
        AssertionError: still false after ``timeout_s`` of virtual time.
    """
    clock = otp.current_node().clock
    deadline = clock.monotonic() + timeout_s
    activity = asyncio.Event()

    def on_statement(*_: object) -> None:
        activity.set()

    with otp.telemetry.attached(
        ("eventually", object()), [(*db.QUERY_EVENT, "stop")], on_statement
    ):
        while not await check():
            activity.clear()  # what check() ran itself does not count
            if clock.monotonic() > deadline:
                raise AssertionError(f"never happened within {timeout_s}s: {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(activity.wait(), 1.0)
