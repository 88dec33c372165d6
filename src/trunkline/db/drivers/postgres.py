"""The PostgreSQL driver, on asyncpg.

- A **pool** of connections (``min_size`` .. ``max_size``, in ``_postgres_pool``), rather
  than asyncpg's ``Pool``: taking an idle connection and giving it back are a ``deque`` pop
  and append, where asyncpg's pool resets the session on each release (one more round trip:
  a point read takes three times as long) and, even without that, costs a quarter more.
  Connections are not reset between uses: state set by a statement outside a transaction
  (``SET``, session advisory locks) stays with its connection, so use ``SET LOCAL`` and
  ``pg_advisory_xact_lock`` in transactions instead.
- A **lost connection** is noticed by asyncpg and dropped from the pool; the next use opens a
  new one, retrying with exponential backoff on the node's clock for up to
  ``reconnect_timeout_s`` before it gives up with ``CannotConnect``. The statement that was
  running when the connection dropped fails with ``ConnectionLost`` and is not replayed.
- **Notifications** go through one more, dedicated connection, opened at the first
  ``listen``; when it drops, it is re-established (with backoff, for as long as it takes) and
  every channel is listened to again. Notifications sent in between are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ..driver import Driver, Session
from ..exceptions import (
    CannotConnect,
    ConnectionLost,
    IntegrityError,
    QueryError,
    TransactionAborted,
    UniqueViolation,
)
from ..notifications import Hub
from ..query import POSTGRESQL, Statement
from ..row import Row
from ..url import DatabaseURL
from ._postgres_pool import FIRST_DELAY_S, Pool, next_delay, sleep

__all__ = ["PostgresDriver", "PostgresRecord"]

log = logging.getLogger("trunkline.db")

NAME = "postgresql"

# A statement's connection went away under it.
_LOST = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,  # the backend was terminated, or the server is stopping
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


class PostgresRecord(asyncpg.Record):  # type: ignore[misc]
    """asyncpg's ``Record``, also read by attribute; see ``db.row``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"row has no column {name!r}") from None

    def __repr__(self) -> str:
        return f"<Row {' '.join(f'{key}={value!r}' for key, value in self.items())}>"


def _error(error: Exception, statement: Statement, connection: Any) -> Exception:
    if isinstance(error, asyncpg.UniqueViolationError):
        return UniqueViolation(
            statement.name, NAME, str(error), error.sqlstate, error.constraint_name
        )
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(
            statement.name, NAME, str(error), error.sqlstate, error.constraint_name
        )
    if isinstance(error, _LOST) or connection.is_closed():
        return ConnectionLost(statement.name, NAME, error)
    return QueryError(statement.name, NAME, str(error), getattr(error, "sqlstate", None))


def _rows(status: str) -> int:
    # "INSERT 0 3", "UPDATE 2", "DELETE 0", "SELECT 5"; "CREATE TABLE" changed nothing.
    _, _, last = status.rpartition(" ")
    return int(last) if last.isdigit() else 0


class _Listener:
    """The connection that LISTENs, re-established whenever it drops."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], hub: Hub, target: str) -> None:
        self._connect = connect
        self._hub = hub
        self._target = target
        self._connection: Any = None
        self._channels: set[str] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    async def listen(self, channel: str) -> None:
        if self._reconnecting is not None and not self._reconnecting.done():
            self._channels.add(channel)  # listened to as soon as the connection is back
            return
        if self._connection is None:
            try:
                self._connection = await self._connect()
            except Exception as error:
                raise CannotConnect(self._target, error) from error
            self._connection.add_termination_listener(self._on_terminated)
        self._channels.add(channel)
        await self._connection.add_listener(channel, self._on_notification)

    async def unlisten(self, channel: str) -> None:
        self._channels.discard(channel)
        connection = self._connection
        if connection is not None and not connection.is_closed():
            await connection.remove_listener(channel, self._on_notification)

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._hub.publish(channel, payload)

    def _on_terminated(self, connection: Any) -> None:
        if self._closed or connection is not self._connection:
            return
        log.warning("lost the LISTEN connection to %s; re-establishing it", self._target)
        self._connection = None
        self._reconnecting = asyncio.get_running_loop().create_task(self._reestablish())

    async def _reestablish(self) -> None:
        delay_s = FIRST_DELAY_S
        while not self._closed:
            try:
                connection = await self._connect()
                for channel in list(self._channels):
                    await connection.add_listener(channel, self._on_notification)
            except Exception as error:
                log.warning(
                    "cannot re-establish LISTEN on %s (%s); retrying in %.2fs",
                    self._target,
                    error,
                    delay_s,
                )
                await sleep(delay_s)
                delay_s = next_delay(delay_s)
                continue
            if self._closed:
                await connection.close()
                return
            self._connection = connection
            connection.add_termination_listener(self._on_terminated)
            log.info("LISTEN on %s re-established", self._target)
            return

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.gather(connection.close(), return_exceptions=True)


class PostgresDriver(Driver):
    """The PostgreSQL driver; see the module. Made by :func:`~trunkline.db.connect`."""

    dialect = POSTGRESQL
    name = NAME

    def __init__(self, url: DatabaseURL, hub: Hub) -> None:
        options = url.options
        self._url = url
        self._min_size: int = options["min_size"]
        self._connect_timeout_s: float = options["connect_timeout_s"]
        self._pool = Pool(
            self._connect, url.target, options["max_size"], options["reconnect_timeout_s"]
        )
        self._listener = _Listener(self._connect, hub, url.target)

    async def _connect(self) -> Any:
        return await asyncpg.connect(
            self._url.dsn, timeout=self._connect_timeout_s, record_class=PostgresRecord
        )

    async def open(self) -> None:
        await self._pool.open(max(self._min_size, 1))

    # -- statements outside transactions --

    async def execute(self, statement: Statement, args: tuple[Any, ...]) -> int:
        pool = self._pool
        connection = pool.take()
        if connection is None:
            connection = await pool.acquire()
        try:
            return _rows(await connection.execute(statement.text, *args))
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    async def execute_many(self, statement: Statement, args: Iterable[Sequence[Any]]) -> None:
        pool = self._pool
        connection = pool.take()
        if connection is None:
            connection = await pool.acquire()
        try:
            await connection.executemany(statement.text, args)  # atomic since asyncpg 0.22
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    async def fetch(self, statement: Statement, args: tuple[Any, ...]) -> list[Row]:
        pool = self._pool
        connection = pool.take()
        if connection is None:
            connection = await pool.acquire()
        try:
            rows: list[Row] = await connection.fetch(statement.text, *args)
            return rows
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    async def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> Row | None:
        pool = self._pool
        connection = pool.take()
        if connection is None:
            connection = await pool.acquire()
        try:
            row: Row | None = await connection.fetchrow(statement.text, *args)
            return row
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    async def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> Any:
        pool = self._pool
        connection = pool.take()
        if connection is None:
            connection = await pool.acquire()
        try:
            return await connection.fetchval(statement.text, *args)
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    # -- transactions --

    async def begin(self) -> PostgresSession:
        connection = await self._pool.acquire()
        session = PostgresSession(self._pool, connection)
        try:
            await session._plain(_BEGIN)
        except BaseException:
            self._pool.give_back(connection)
            raise
        return session

    # -- notifications --

    async def notify(self, channel: str, payload: str) -> None:
        await self.execute(_NOTIFY, (channel, payload))

    async def listen(self, channel: str) -> None:
        await self._listener.listen(channel)

    async def unlisten(self, channel: str) -> None:
        await self._listener.unlisten(channel)

    async def close(self) -> None:
        await self._listener.close()
        await self._pool.close()


_BEGIN = Statement("begin", "BEGIN", False)
_COMMIT = Statement("commit", "COMMIT", False)
_ROLLBACK = Statement("rollback", "ROLLBACK", False)
_NOTIFY = Statement("notify", "SELECT pg_notify($1, $2)", False)


class PostgresSession(Session):
    """A transaction on one connection of the pool, which it keeps until commit or rollback."""

    def __init__(self, pool: Pool, connection: Any) -> None:
        self._pool = pool
        self._connection = connection

    async def _plain(self, statement: Statement) -> str:
        try:
            status: str = await self._connection.execute(statement.text)
            return status
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def execute(self, statement: Statement, args: tuple[Any, ...]) -> int:
        try:
            return _rows(await self._connection.execute(statement.text, *args))
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def execute_many(self, statement: Statement, args: Iterable[Sequence[Any]]) -> None:
        try:
            await self._connection.executemany(statement.text, args)
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch(self, statement: Statement, args: tuple[Any, ...]) -> list[Row]:
        try:
            rows: list[Row] = await self._connection.fetch(statement.text, *args)
            return rows
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> Row | None:
        try:
            row: Row | None = await self._connection.fetchrow(statement.text, *args)
            return row
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> Any:
        try:
            return await self._connection.fetchval(statement.text, *args)
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def run_script(self, statement: Statement) -> None:
        await self._plain(statement)  # no arguments: the simple protocol, several statements

    async def savepoint(self, name: str) -> None:
        await self._plain(Statement("savepoint", f"SAVEPOINT {name}", False))

    async def release(self, name: str) -> None:
        await self._plain(Statement("release", f"RELEASE SAVEPOINT {name}", False))

    async def rollback_to(self, name: str) -> None:
        sql = f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        await self._plain(Statement("rollback to savepoint", sql, False))

    async def commit(self) -> None:
        try:
            status = await self._plain(_COMMIT)
        finally:
            self._pool.give_back(self._connection)
        if status == "ROLLBACK":  # PostgreSQL's answer to COMMIT in a failed transaction
            raise TransactionAborted("the transaction had failed and was rolled back")

    async def rollback(self) -> None:
        try:
            await self._plain(_ROLLBACK)
        finally:
            self._pool.give_back(self._connection)

    async def notify(self, channel: str, payload: str) -> None:
        await self.execute(_NOTIFY, (channel, payload))
