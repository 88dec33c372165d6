"""The driver behaviour: what :class:`~trunkline.db.Database` needs from a database engine.

Implementations live in ``trunkline.db.drivers``: ``SQLiteDriver`` (the embedded default) and
``PostgresDriver`` (asyncpg). ``Database`` adds everything that is the same for both on top:
statement resolution, telemetry, transactions and savepoints, notifications fan-out,
migrations. A driver only runs statements.

The contract, checked by the shared conformance suite in ``tests/db/db_conformance.py`` that
every driver must pass against its real engine:

- Statements arrive compiled for the driver's dialect (:class:`~trunkline.db.query.Statement`:
  ``$n`` already turned into the driver's parameter form) with their arguments as a tuple.
- Rows are the driver's native rows, readable as :class:`~trunkline.db.row.Row` says.
- Every driver error leaves as a :mod:`trunkline.db.exceptions` error, the driver's own as its
  ``__cause__``: unique violations as ``UniqueViolation``, other constraint violations as
  ``IntegrityError``, a dropped connection as ``ConnectionLost``, the rest as ``QueryError``.
- Statements outside a transaction commit on their own; ``execute_many`` is atomic.
- :meth:`Driver.begin` returns a :class:`Session`: one connection in a transaction, which
  nothing else uses until ``commit`` or ``rollback``. On SQLite it holds the one writer.
- Notifications sent outside a transaction are delivered at once, those sent in a session
  when it commits, never when it rolls back (or rolls back to a savepoint taken before them).
  Delivery goes to the :class:`~trunkline.db.notifications.Hub` given to the driver.
- Nothing blocks the event loop: blocking work runs on threads, replies come back with
  ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from .notifications import Listening
from .query import Statement
from .row import Row

__all__ = ["Driver", "Runner", "Session"]


class Runner(ABC):
    """Runs statements: a driver outside transactions, or a session inside one.

    Each method returns an awaitable: a coroutine (``async def``) or, where the work is
    handed to a thread, the future the thread will resolve. An error that can be known at
    once (closed, misused) may be raised by the call itself.
    """

    @abstractmethod
    def execute(self, statement: Statement, args: tuple[Any, ...]) -> Awaitable[int]:
        """Run a statement; the number of rows it changed (0 when that means nothing)."""

    @abstractmethod
    def execute_many(self, statement: Statement, args: Iterable[Sequence[Any]]) -> Awaitable[None]:
        """Run a statement once per argument tuple, in one round trip and all or nothing."""

    @abstractmethod
    def fetch(self, statement: Statement, args: tuple[Any, ...]) -> Awaitable[list[Row]]:
        """Every row the statement returns."""

    @abstractmethod
    def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> Awaitable[Row | None]:
        """The first row, or ``None``."""

    @abstractmethod
    def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> Awaitable[Any]:
        """The first column of the first row, or ``None`` when there is no row."""


class Session(Runner):
    """One connection inside a transaction that :meth:`Driver.begin` has begun."""

    @abstractmethod
    async def savepoint(self, name: str) -> None:
        """Set a savepoint called ``name`` (a plain identifier chosen by the caller)."""

    @abstractmethod
    async def release(self, name: str) -> None:
        """Keep what was done since savepoint ``name`` and forget the savepoint."""

    @abstractmethod
    async def rollback_to(self, name: str) -> None:
        """Undo what was done since savepoint ``name`` (notifications included), then
        forget it."""

    @abstractmethod
    async def commit(self) -> None:
        """Commit, deliver the session's notifications, give the connection back. If the
        commit fails, the transaction is rolled back and the connection given back all the
        same."""

    @abstractmethod
    async def rollback(self) -> None:
        """Roll back, drop the session's notifications, give the connection back."""

    @abstractmethod
    async def notify(self, channel: str, payload: str) -> None:
        """Send a notification when the transaction commits."""

    @abstractmethod
    async def run_script(self, statement: Statement) -> None:
        """Run several ``;``-separated statements with no arguments (migrations)."""


class Driver(Runner, Listening):
    """A database engine, reached through a URL. See the module for the contract."""

    dialect: int
    """:data:`~trunkline.db.query.POSTGRESQL` or :data:`~trunkline.db.query.SQLITE`."""

    name: str
    """``"postgresql"`` or ``"sqlite"``: what telemetry and errors call the driver."""

    @abstractmethod
    async def open(self) -> None:
        """Connect (or open the file), so that a bad target fails now.

        Raises:
            CannotConnect: the server is unreachable or refuses us; the file cannot be opened.
        """

    @abstractmethod
    async def begin(self) -> Session:
        """Begin a transaction on a connection of its own (on SQLite, the writer)."""

    @abstractmethod
    async def notify(self, channel: str, payload: str) -> None:
        """Send a notification now."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection. Later calls raise ``DatabaseClosed``. Idempotent."""
