"""The PostgreSQL driver's pool of connections, and the backoff it reconnects with.

Idle connections wait in a deque (the most recently used is taken first: its caches are
warm), so taking and giving back are a pop and an append, with no await when one is idle. A
connection that died, that comes back still in a transaction, or whose ``BEGIN``, ``COMMIT``
or ``ROLLBACK`` was interrupted (:meth:`Pool.discard`) is dropped; the next taker opens a new
one, retrying with exponential backoff on the node's clock for up to ``reconnect_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from trunkline.otp import current_node

from ..exceptions import CannotConnect, DatabaseClosed

__all__ = [
    "CLOSE_TIMEOUT_S",
    "FIRST_DELAY_S",
    "LOST",
    "MAX_DELAY_S",
    "TRANSIENT",
    "Pool",
    "next_delay",
    "sleep",
]

log = logging.getLogger("trunkline.db")

# Failures to reach the server that may pass: worth another try after a pause.
TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
)
# A statement's connection went away under it (TimeoutError, an OSError, included: a
# connection that does not answer within command_timeout_s is taken for dead).
LOST = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,  # the backend was terminated, or the server is stopping
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
FIRST_DELAY_S = 0.05
# Closing says goodbye and waits for the server to hang up; a connection dead without a word
# never would, so it is cut after this.
CLOSE_TIMEOUT_S = 2.0
MAX_DELAY_S = 2.0


async def sleep(delay_s: float) -> None:
    """Sleep on the node's clock, so that tests on a mock clock do not wait."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handle = current_node().clock.call_later(delay_s, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def next_delay(delay_s: float) -> float:
    # Jitter, so that nodes that lost the server together do not all come back together.
    return min(delay_s * 2, MAX_DELAY_S) * random.uniform(0.75, 1.0)


class Pool:
    """Connections to one server: idle ones in a deque, a size limit, waiters in order."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        target: str,
        max_size: int,
        reconnect_timeout_s: float,
    ) -> None:
        self._connect = connect
        self._target = target
        self._max_size = max_size
        self._reconnect_timeout_s = reconnect_timeout_s
        self._idle: deque[Any] = deque()
        self._size = 0  # open or opening
        # A waiter gets a connection, or None: "a place came free, open one yourself".
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    async def open(self, count: int) -> None:
        """Open ``count`` connections now, without retrying: a bad target fails at start."""
        self._size += count
        results = await asyncio.gather(
            *(self._connect() for _ in range(count)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self._size -= 1
            else:
                self._idle.append(result)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            await self.close()
            raise CannotConnect(self._target, failures[0]) from failures[0]

    def take(self) -> Any:
        """An idle, open connection, or ``None``."""
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: its caches are warm
            if not connection.is_closed():
                return connection
            self._size -= 1
        return None

    async def acquire(self) -> Any:
        """A connection: an idle one, a new one if the pool has room, else the next one
        given back."""
        while True:
            if self._closed:
                raise DatabaseClosed(f"{self._target} is closed")
            connection = self.take()
            if connection is not None:
                return connection
            if self._size < self._max_size:
                self._size += 1
                try:
                    return await self._reconnect()
                except BaseException:
                    self._size -= 1
                    self._hand_over(None)
                    raise
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                connection = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand_over(waiter.result())  # given one, then cancelled: pass it on
                raise
            if connection is not None:
                return connection

    def give_back(self, connection: Any) -> None:
        """Return a connection taken from the pool, to the next waiter or the idle ones.

        One that is dead, or still in a transaction, is dropped instead. Only a connection
        whose last statement has answered may come back: until then asyncpg does not know
        whether it is in a transaction (see :meth:`discard`).
        """
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            self.discard(connection)
        else:
            self._hand_over(connection)

    def discard(self, connection: Any) -> None:
        """Drop a connection taken from the pool for good, and let the next taker open
        another in its place.

        For a connection whose state is unknown: a ``BEGIN``, ``COMMIT`` or ``ROLLBACK``
        cancelled or lost before its answer came may still take effect on the server, after
        the next taker has started on the connection.
        """
        if not connection.is_closed():
            connection.terminate()
        self._size -= 1
        self._hand_over(None)

    def _hand_over(self, connection: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)

    async def _reconnect(self) -> Any:
        clock = current_node().clock
        deadline = clock.monotonic() + self._reconnect_timeout_s
        delay_s = FIRST_DELAY_S
        while True:
            try:
                return await self._connect()
            except TRANSIENT as error:
                if clock.monotonic() + delay_s > deadline:
                    raise CannotConnect(self._target, error) from error
                log.warning("cannot reach %s (%s); retrying in %.2fs", self._target, error, delay_s)
                await sleep(delay_s)
                delay_s = next_delay(delay_s)
            except Exception as error:  # refused for good: bad password, no such database
                raise CannotConnect(self._target, error) from error

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(DatabaseClosed(f"{self._target} is closed"))
        idle, self._idle = list(self._idle), deque()
        self._size -= len(idle)
        await asyncio.gather(
            *(connection.close(timeout=CLOSE_TIMEOUT_S) for connection in idle),
            return_exceptions=True,
        )
