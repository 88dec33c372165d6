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
  running when the connection dropped fails with ``ConnectionLost`` and is not replayed. A
  statement that gets no answer within ``command_timeout_s`` is taken for one on a dead
  connection: it fails the same way and its connection is dropped. Migration scripts have no
  timeout: an index build may take its time.
- A connection whose ``BEGIN``, ``COMMIT`` or ``ROLLBACK`` was cancelled (or lost) before it
  answered is dropped, never given back: the server may still be about to run it.
- **Notifications** go through one more, dedicated connection, opened at the first
  ``listen`` and checked every ``health_check_interval_s`` (``_postgres_listener``); when it
  drops, or fails a check, it is re-established (with backoff, for as long as it takes) and
  every channel is listened to again. Notifications sent in between are lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ..driver import Driver, Session
from ..exceptions import (
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
from ._postgres_listener import Listener
from ._postgres_pool import LOST, Pool

__all__ = ["PostgresDriver", "PostgresRecord"]

NAME = "postgresql"


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
    if isinstance(error, TimeoutError):
        # No answer within command_timeout_s: the server is slow, or the connection is dead
        # without a word. Either way it cannot be trusted with the next statement.
        connection.terminate()
        return ConnectionLost(
            statement.name, NAME, TimeoutError("no answer within command_timeout_s")
        )
    if isinstance(error, asyncpg.UniqueViolationError):
        return UniqueViolation(
            statement.name, NAME, str(error), error.sqlstate, error.constraint_name
        )
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(
            statement.name, NAME, str(error), error.sqlstate, error.constraint_name
        )
    if isinstance(error, LOST) or connection.is_closed():
        return ConnectionLost(statement.name, NAME, error)
    return QueryError(statement.name, NAME, str(error), getattr(error, "sqlstate", None))


# The command tags that count rows changed: "INSERT 0 3", "UPDATE 2", "DELETE 0", "MERGE 1".
# The others count rows returned, moved or copied ("SELECT 5", "FETCH 5", "COPY 7"; also the
# tag of CREATE TABLE AS) or nothing ("CREATE TABLE"), and make 0, as on SQLite.
_CHANGED = ("INSERT ", "UPDATE ", "DELETE ", "MERGE ")


def _rows(status: str) -> int:
    return int(status[status.rindex(" ") + 1 :]) if status.startswith(_CHANGED) else 0


class PostgresDriver(Driver):
    """The PostgreSQL driver; see the module. Made by :func:`~trunkline.db.connect`."""

    dialect = POSTGRESQL
    name = NAME

    def __init__(self, url: DatabaseURL, hub: Hub) -> None:
        options = url.options
        self._url = url
        self._min_size: int = options["min_size"]
        self._connect_timeout_s: float | None = options["connect_timeout_s"]
        self._timeout_s: float | None = options["command_timeout_s"]
        self._pool = Pool(
            self._connect, url.target, options["max_size"], options["reconnect_timeout_s"]
        )
        self._listener = Listener(
            self._connect, hub, url.target, options["health_check_interval_s"]
        )

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
            return _rows(await connection.execute(statement.text, *args, timeout=self._timeout_s))
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
            # Atomic since asyncpg 0.22.
            await connection.executemany(statement.text, args, timeout=self._timeout_s)
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
            rows: list[Row] = await connection.fetch(statement.text, *args, timeout=self._timeout_s)
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
            row: Row | None = await connection.fetchrow(
                statement.text, *args, timeout=self._timeout_s
            )
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
            return await connection.fetchval(statement.text, *args, timeout=self._timeout_s)
        except Exception as error:
            raise _error(error, statement, connection) from error
        finally:
            pool.give_back(connection)

    # -- transactions --

    async def begin(self) -> PostgresSession:
        pool = self._pool
        connection = await pool.acquire()
        session = PostgresSession(pool, connection, self._timeout_s)
        try:
            await session._plain(_BEGIN)
        except BaseException:
            # Cancelled (or lost) before the answer came: asyncpg does not know yet whether
            # the server is in a transaction, and the next taker would find out too late.
            pool.discard(connection)
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

    def __init__(self, pool: Pool, connection: Any, timeout_s: float | None) -> None:
        self._pool = pool
        self._connection = connection
        self._timeout_s = timeout_s

    async def _plain(self, statement: Statement, *, timed: bool = True) -> str:
        try:
            status: str = await self._connection.execute(
                statement.text, timeout=self._timeout_s if timed else None
            )
            return status
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def execute(self, statement: Statement, args: tuple[Any, ...]) -> int:
        try:
            return _rows(
                await self._connection.execute(statement.text, *args, timeout=self._timeout_s)
            )
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def execute_many(self, statement: Statement, args: Iterable[Sequence[Any]]) -> None:
        try:
            await self._connection.executemany(statement.text, args, timeout=self._timeout_s)
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch(self, statement: Statement, args: tuple[Any, ...]) -> list[Row]:
        try:
            rows: list[Row] = await self._connection.fetch(
                statement.text, *args, timeout=self._timeout_s
            )
            return rows
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> Row | None:
        try:
            row: Row | None = await self._connection.fetchrow(
                statement.text, *args, timeout=self._timeout_s
            )
            return row
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> Any:
        try:
            return await self._connection.fetchval(statement.text, *args, timeout=self._timeout_s)
        except Exception as error:
            raise _error(error, statement, self._connection) from error

    async def run_script(self, statement: Statement) -> None:
        # No arguments: the simple protocol, several statements. No timeout: a migration may
        # build an index on a large table.
        await self._plain(statement, timed=False)

    async def savepoint(self, name: str) -> None:
        await self._plain(Statement("savepoint", f"SAVEPOINT {name}", False))

    async def release(self, name: str) -> None:
        await self._plain(Statement("release", f"RELEASE SAVEPOINT {name}", False))

    async def rollback_to(self, name: str) -> None:
        sql = f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        await self._plain(Statement("rollback to savepoint", sql, False))

    async def commit(self) -> None:
        status = await self._end(_COMMIT)
        if status == "ROLLBACK":  # PostgreSQL's answer to COMMIT in a failed transaction
            raise TransactionAborted("the transaction had failed and was rolled back")

    async def rollback(self) -> None:
        if self._connection.is_closed():  # the server rolled back as the connection went
            self._pool.discard(self._connection)
            return
        await self._end(_ROLLBACK)

    async def _end(self, statement: Statement) -> str:
        pool, connection = self._pool, self._connection
        try:
            status = await self._plain(statement)
        except QueryError:
            pool.give_back(connection)  # the server answered (a deferred constraint failed)
            raise
        except BaseException:
            pool.discard(connection)  # cancelled or lost: it may not have run yet
            raise
        pool.give_back(connection)
        return status

    async def notify(self, channel: str, payload: str) -> None:
        await self.execute(_NOTIFY, (channel, payload))
