"""The PostgreSQL driver's LISTEN connection: re-established whenever it drops, and checked on
an interval, because a connection can die without a word.

A server that crashed, or a NAT table or a failover that forgot the connection, may send no
FIN and no RST: the socket stays open and no notification ever comes. So every
``check_interval_s`` (on the node's clock) the listener sends ``SELECT 1``. That, and every
``LISTEN`` and ``UNLISTEN``, must answer within as long again; if it does not, the
connection is terminated, then re-established (with backoff, for as long as it takes) and
every channel listened to again. Notifications sent in between are lost: they are wake-up
calls, and consumers poll as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import CannotConnect, ConnectionLost, DatabaseError, QueryError
from ..notifications import Hub
from ._postgres_pool import CLOSE_TIMEOUT_S, FIRST_DELAY_S, LOST, next_delay, sleep

__all__ = ["Listener"]

log = logging.getLogger("trunkline.db")

_CHECK = "SELECT 1"


class Listener:
    """LISTENs on behalf of a :class:`~trunkline.db.notifications.Hub`, on a connection of
    its own, opened at the first :meth:`listen`.

    Args:
        connect: opens a connection (asyncpg's).
        hub: where notifications go.
        target: what log lines and errors name.
        check_interval_s: how often the connection is checked, and how long the check (or a
            ``LISTEN``, an ``UNLISTEN``) may take before the connection is given up for dead.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        hub: Hub,
        target: str,
        check_interval_s: float,
    ) -> None:
        self._connect = connect
        self._hub = hub
        self._target = target
        self._check_interval_s = check_interval_s
        self._connection: Any = None
        self._channels: set[str] = set()
        # asyncpg runs one operation at a time on a connection: LISTEN, UNLISTEN and the
        # check take turns.
        self._lock = asyncio.Lock()
        self._reestablishing: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._closed = False

    async def listen(self, channel: str) -> None:
        """Receive notifications on ``channel`` from now on (while the connection is being
        re-established: from when it is back).

        Raises:
            CannotConnect: the first connection cannot be opened.
            ConnectionLost: the connection dropped, or did not answer, while the ``LISTEN``
                was on its way (it is being re-established, without this channel).
            QueryError: the server refused the ``LISTEN``.
        """
        async with self._lock:
            self._channels.add(channel)
            try:
                connection = self._connection
                if connection is not None and connection.is_closed():
                    self._on_terminated(connection)  # before asyncpg's callback says so
                if self._reestablishing is not None and not self._reestablishing.done():
                    return  # listened to as soon as the connection is back
                if self._connection is None:
                    self._adopt(await self._open())
                connection = self._connection
                try:
                    await self._ask(connection, connection.add_listener, channel)
                except Exception as error:
                    raise self._failure("listen", error, connection) from error
            except BaseException:
                self._channels.discard(channel)
                raise

    async def unlisten(self, channel: str) -> None:
        """Stop receiving notifications on ``channel``.

        Raises:
            QueryError: the server refused the ``UNLISTEN``. A connection that dropped, or
                did not answer, is no error: its ``LISTEN`` went with it.
        """
        async with self._lock:
            self._channels.discard(channel)  # so that re-establishing leaves it out
            connection = self._connection
            if connection is None or connection.is_closed():
                return
            try:
                await self._ask(connection, connection.remove_listener, channel)
            except Exception as error:
                if not connection.is_closed():
                    raise self._failure("unlisten", error, connection) from error

    async def close(self) -> None:
        self._closed = True
        tasks = [task for task in (self._reestablishing, self._checking) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.gather(connection.close(timeout=CLOSE_TIMEOUT_S), return_exceptions=True)

    # -- private helpers --

    async def _open(self) -> Any:
        try:
            return await self._connect()
        except Exception as error:
            raise CannotConnect(self._target, error) from error

    def _adopt(self, connection: Any) -> None:
        self._connection = connection
        connection.add_termination_listener(self._on_terminated)
        if self._checking is None:
            self._checking = asyncio.get_running_loop().create_task(self._check_regularly())

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._hub.publish(channel, payload)

    def _on_terminated(self, connection: Any) -> None:
        if self._closed or connection is not self._connection:
            return
        log.warning("lost the LISTEN connection to %s; re-establishing it", self._target)
        self._replace()

    def _replace(self) -> None:
        self._connection = None
        self._reestablishing = asyncio.get_running_loop().create_task(self._reestablish())

    async def _reestablish(self) -> None:
        delay_s = FIRST_DELAY_S
        while True:
            connection = None
            try:
                connection = await self._connect()
                await self._listen_to_every_channel(connection)
            except Exception as error:
                if connection is not None:
                    connection.terminate()
                log.warning(
                    "cannot re-establish LISTEN on %s (%s); retrying in %.2fs",
                    self._target,
                    _describe(error),
                    delay_s,
                )
                await sleep(delay_s)
                delay_s = next_delay(delay_s)
                continue
            except BaseException:  # closing
                if connection is not None:
                    connection.terminate()
                raise
            self._adopt(connection)
            log.info("LISTEN on %s re-established", self._target)
            return

    async def _listen_to_every_channel(self, connection: Any) -> None:
        # Until it has caught up: channels can be listened to and unlistened at each await.
        listened: set[str] = set()
        while True:
            todo, extra = self._channels - listened, listened - self._channels
            if not todo and not extra:
                return
            for channel in todo:
                await self._ask(connection, connection.add_listener, channel)
                listened.add(channel)
            for channel in extra:
                await self._ask(connection, connection.remove_listener, channel)
                listened.discard(channel)

    async def _check_regularly(self) -> None:
        while True:
            await sleep(self._check_interval_s)
            async with self._lock:
                connection = self._connection
                if connection is None or connection.is_closed():
                    continue  # being re-established
                try:
                    async with asyncio.timeout(self._check_interval_s):
                        await connection.fetchval(_CHECK)
                except TimeoutError:
                    problem = f"no answer to {_CHECK} within {self._check_interval_s:g}s"
                    self._give_up(connection, problem)
                except Exception as error:
                    self._give_up(connection, f"{_CHECK} failed: {_describe(error)}")

    async def _ask(
        self, connection: Any, operation: Callable[[str, Any], Awaitable[None]], channel: str
    ) -> None:
        """``LISTEN`` or ``UNLISTEN`` on ``connection``, which must answer in time."""
        try:
            async with asyncio.timeout(self._check_interval_s):
                await operation(channel, self._on_notification)
        except TimeoutError:
            self._give_up(connection, f"no answer within {self._check_interval_s:g}s")
            raise

    def _give_up(self, connection: Any, problem: str) -> None:
        connection.terminate()  # asyncpg calls _on_terminated on the next turn, too late
        if self._closed or connection is not self._connection:
            return  # not in use yet: _reestablish tries again
        log.warning(
            "the LISTEN connection to %s looks dead (%s); re-establishing it",
            self._target,
            problem,
        )
        self._replace()

    def _failure(self, statement: str, error: Exception, connection: Any) -> DatabaseError:
        if isinstance(error, TimeoutError):
            error = TimeoutError(f"no answer within {self._check_interval_s:g}s")
        if isinstance(error, LOST) or connection.is_closed():
            return ConnectionLost(statement, "postgresql", error)
        return QueryError(statement, "postgresql", str(error), getattr(error, "sqlstate", None))


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
