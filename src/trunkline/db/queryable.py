"""The query methods that a :class:`~trunkline.db.Database` and a
:class:`~trunkline.db.Transaction` share, and the telemetry around each statement.

A service that writes takes a ``Queryable``, so that its caller decides whether the writes
stand alone or join a transaction::

    async def enqueue(conn: db.Queryable, worker: str, args: str) -> int:
        return await conn.fetch_val(INSERT_JOB, worker, args)

    async with database.transaction() as tx:
        await tx.execute("INSERT INTO messages (room, body) VALUES ($1, $2)", room, body)
        await enqueue(tx, "deliver", body)      # committed with the message, or not at all

Telemetry: every statement is a span, ``("trunkline", "db", "query", start | stop |
exception)``, with metadata ``statement`` (its name), ``driver``, ``method`` and
``telemetry_span_context``; ``stop`` adds the measurement ``rows``. See
``docs/database.md``.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from trunkline.otp import Clock, telemetry

from .driver import Runner
from .query import Query, Statement, statement_for
from .row import Row

__all__ = ["QUERY_EVENT", "Queryable"]

QUERY_EVENT = ("trunkline", "db", "query")
"""The prefix of the span around every statement."""

_START = (*QUERY_EVENT, "start")
_STOP = (*QUERY_EVENT, "stop")
_EXCEPTION = (*QUERY_EVENT, "exception")

_span_ids = itertools.count(1)
_T = TypeVar("_T")

# Bound once: three of these run before every statement, to skip the span when nobody listens.
_has_handlers = telemetry.has_handlers


class Queryable:
    """Runs statements: the methods of a database and of a transaction.

    Statements are a :class:`~trunkline.db.Query` or a string, with ``$1, $2, ...``
    parameters on both drivers; the arguments follow the statement.
    """

    __slots__ = ("_dialect", "_driver_name", "_statements", "_timing")

    _dialect: int
    _driver_name: str
    _statements: dict[Query | str, Statement]
    _timing: Timing

    def _runner(self) -> Runner:
        """What runs the next statement; raises if none may run now."""
        raise NotImplementedError

    def _failed(self, error: BaseException) -> None:
        """A statement failed with ``error``."""

    # Each method is one frame of its own when nobody listens to the span (three dict
    # lookups tell): the statement from the cache, the driver's awaitable awaited. When
    # somebody listens, _span wraps the same call.

    async def execute(self, query: Query | str, *args: Any) -> int:
        """Run a statement.

        Returns:
            how many rows it inserted, updated or deleted (0 for other statements).

        Raises:
            QueryError: the database refused or failed it; ``IntegrityError`` (and
                ``UniqueViolation``) for a constraint it violates.
            ConnectionLost: the connection dropped while it ran.
            CannotConnect: no connection could be had within ``reconnect_timeout_s``.
            TransactionError: on a transaction that has ended or has an open savepoint;
                ``TransactionAborted`` when an earlier statement of it failed.
            DatabaseClosed: the database is closed.
        """
        statement = self._statements.get(query) or statement_for(query, self._dialect)
        runner = self._runner()
        if _has_handlers(_START) or _has_handlers(_STOP) or _has_handlers(_EXCEPTION):
            return await self._span(runner.execute, statement, args, "execute", _changed)
        try:
            return await runner.execute(statement, args)
        except BaseException as error:
            self._failed(error)
            raise

    async def execute_many(self, query: Query | str, args: Iterable[Sequence[Any]]) -> None:
        """Run a statement once for each tuple of arguments, in one round trip, all or nothing
        (in a transaction of its own when not in one).

        Raises:
            as :meth:`execute`.
        """
        statement = self._statements.get(query) or statement_for(query, self._dialect)
        runner = self._runner()
        args = args if isinstance(args, list | tuple) else list(args)
        if _has_handlers(_START) or _has_handlers(_STOP) or _has_handlers(_EXCEPTION):
            await self._span(runner.execute_many, statement, args, "execute_many", _tuples)
            return
        try:
            await runner.execute_many(statement, args)
        except BaseException as error:
            self._failed(error)
            raise

    async def fetch(self, query: Query | str, *args: Any) -> list[Row]:
        """Every row the statement returns.

        Raises:
            as :meth:`execute`.
        """
        statement = self._statements.get(query) or statement_for(query, self._dialect)
        runner = self._runner()
        if _has_handlers(_START) or _has_handlers(_STOP) or _has_handlers(_EXCEPTION):
            return await self._span(runner.fetch, statement, args, "fetch", _rows)
        try:
            return await runner.fetch(statement, args)
        except BaseException as error:
            self._failed(error)
            raise

    async def fetch_one(self, query: Query | str, *args: Any) -> Row | None:
        """The first row the statement returns, or ``None`` if it returns none.

        Raises:
            as :meth:`execute`.
        """
        statement = self._statements.get(query) or statement_for(query, self._dialect)
        runner = self._runner()
        if _has_handlers(_START) or _has_handlers(_STOP) or _has_handlers(_EXCEPTION):
            return await self._span(runner.fetch_one, statement, args, "fetch_one", _row)
        try:
            return await runner.fetch_one(statement, args)
        except BaseException as error:
            self._failed(error)
            raise

    async def fetch_val(self, query: Query | str, *args: Any) -> Any:
        """The first column of the first row, or ``None`` if there is no row.

        Raises:
            as :meth:`execute`.
        """
        statement = self._statements.get(query) or statement_for(query, self._dialect)
        runner = self._runner()
        if _has_handlers(_START) or _has_handlers(_STOP) or _has_handlers(_EXCEPTION):
            return await self._span(runner.fetch_val, statement, args, "fetch_val", _value)
        try:
            return await runner.fetch_val(statement, args)
        except BaseException as error:
            self._failed(error)
            raise

    # -- telemetry: the shape of telemetry.span, written out, as it runs for every statement --

    async def _span(
        self,
        run: Callable[[Statement, Any], Awaitable[_T]],
        statement: Statement,
        args: Any,
        method: str,
        rows: Callable[[_T, Any], int],
    ) -> _T:
        """``run(statement, args)`` inside the statement's span; ``rows(result, args)`` is
        the ``rows`` measurement of its stop event."""
        timing = self._timing
        start_s = timing.monotonic()
        if start_s >= timing.refresh_at_s:
            timing.refresh(start_s)
        metadata = {
            "statement": statement.name,
            "driver": self._driver_name,
            "method": method,
            "telemetry_span_context": next(_span_ids),
        }
        telemetry.execute(
            _START, {"monotonic_time": start_s, "system_time": start_s + timing.offset_s}, metadata
        )
        try:
            result = await run(statement, args)
        except BaseException as error:
            self._failed(error)
            end_s = timing.monotonic()
            telemetry.execute(
                _EXCEPTION,
                {"duration": end_s - start_s, "monotonic_time": end_s},
                {
                    **metadata,
                    "kind": "error" if isinstance(error, Exception) else "exit",
                    "reason": error,
                    "stacktrace": traceback.extract_tb(error.__traceback__),
                },
            )
            raise
        end_s = timing.monotonic()
        telemetry.execute(
            _STOP,
            {"duration": end_s - start_s, "monotonic_time": end_s, "rows": rows(result, args)},
            metadata,
        )
        return result


# The ``rows`` measurement of each method's stop event, from its result and arguments.


def _changed(count: int, args: Any) -> int:
    return count


def _tuples(result: None, args: Sequence[Any]) -> int:
    return len(args)


def _rows(rows: list[Row], args: Any) -> int:
    return len(rows)


def _row(row: Row | None, args: Any) -> int:
    return 0 if row is None else 1


def _value(value: Any, args: Any) -> int:
    return 1


class Timing:
    """The node's clock, as statements' telemetry reads it.

    ``system_time`` is the monotonic time plus an offset to the wall clock, read again at
    most once a second: reading the wall clock (a ``datetime``) for every statement would
    cost a third of the layer's overhead. On a mock clock the offset never changes, so the
    figures are exact.
    """

    __slots__ = ("clock", "monotonic", "offset_s", "refresh_at_s")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.monotonic = clock.monotonic
        self.offset_s = 0.0
        self.refresh_at_s = float("-inf")

    def refresh(self, monotonic_s: float) -> None:
        """Read the wall clock again (at ``monotonic_s``)."""
        self.offset_s = self.clock.now().timestamp() - self.clock.monotonic()
        self.refresh_at_s = monotonic_s + 1.0
