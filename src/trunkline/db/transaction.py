"""Transactions and savepoints, the same on both drivers.

``async with database.transaction() as tx:`` begins a transaction on a connection of its own
(on SQLite: the one writer, held until the block ends, ``BEGIN IMMEDIATE``). The block's
statements go through ``tx``, which has the query methods of the database; the block commits
when it ends, and rolls back when it raises. ``tx.transaction()`` nests a savepoint::

    async with database.transaction() as tx:
        await tx.execute("INSERT INTO rooms (id, name) VALUES ($1, $2)", room_id, name)
        try:
            async with tx.transaction() as savepoint:
                await savepoint.execute("INSERT INTO slugs (slug) VALUES ($1)", slug)
        except db.UniqueViolation:
            pass                    # the slug is taken: only the savepoint rolled back
        await tx.notify("rooms", room_id)   # delivered when the transaction commits

After a statement fails, the transaction (or savepoint) it failed in can only roll back, on
both drivers (PostgreSQL insists; SQLite is made to agree): later statements through it raise
``TransactionAborted``, and so does the end of its block if the block swallowed the error.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING

from .driver import Runner, Session
from .exceptions import TransactionAborted, TransactionError
from .notifications import check_channel
from .query import Statement
from .queryable import Queryable

if TYPE_CHECKING:
    from .database import Database

__all__ = ["Transaction"]

log = logging.getLogger("trunkline.db")

_NEW, _OPEN, _FAILED, _CLOSED = "new", "open", "failed", "closed"


class Transaction(Queryable):
    """A transaction, or a savepoint in one; made by ``database.transaction()`` or
    ``tx.transaction()``, used as ``async with``. See the module for an example.

    Raises (from ``async with``):
        TransactionError: entered twice; on SQLite, begun by a task that already holds the
            writer in another transaction (use ``tx.transaction()``).
        TransactionAborted: the block swallowed a statement's error and ended normally: the
            transaction was rolled back.
        CannotConnect, ConnectionLost, QueryError: beginning or committing failed (a
            deferred constraint fails at commit, as ``IntegrityError``).
    """

    __slots__ = ("_child", "_database", "_depth", "_error", "_parent", "_session", "_state")

    def __init__(self, database: Database, parent: Transaction | None = None) -> None:
        self._database = database
        self._parent = parent
        self._depth: int = 0 if parent is None else parent._depth + 1
        self._session: Session | None = None
        self._state = _NEW
        self._child: Transaction | None = None
        self._error: BaseException | None = None
        self._dialect = database._dialect
        self._driver_name = database._driver_name
        self._timing = database._timing
        self._statements = database._statements

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self._driver_name

    @property
    def is_savepoint(self) -> bool:
        return self._parent is not None

    def transaction(self) -> Transaction:
        """A savepoint in this transaction, used as ``async with``: it rolls back alone when
        its block raises."""
        return Transaction(self._database, self)

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send a notification on ``channel`` when the transaction commits (dropped if it, or
        the savepoint it was sent in, rolls back).

        Raises:
            TypeError, ValueError: a bad channel (see ``Database.notify``) or a payload that
                is not a string.
        """
        check_channel(channel)
        if not isinstance(payload, str):
            raise TypeError(f"a notification payload is a string, got {payload!r}")
        session = self._usable()
        try:
            await session.notify(channel, payload)
        except BaseException as error:
            self._failed(error)
            raise

    # -- the block --

    async def __aenter__(self) -> Transaction:
        if self._state is not _NEW:
            raise TransactionError("a transaction is entered once; make a new one")
        parent = self._parent
        if parent is None:
            self._session = await self._database._driver.begin()
        else:
            session = parent._usable()
            try:
                await session.savepoint(self._savepoint_name)
            except BaseException as error:
                parent._failed(error)
                raise
            self._session = session
            parent._child = self
        self._state = _OPEN
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None
        failed, self._state = self._state is _FAILED, _CLOSED
        parent = self._parent
        if parent is not None:
            parent._child = None
        if error is None and not failed:
            try:
                if parent is None:
                    await session.commit()
                else:
                    await session.release(self._savepoint_name)
            except BaseException as failure:
                if parent is not None:
                    parent._failed(failure)
                raise
            return
        try:
            if parent is None:
                await session.rollback()
            else:
                await session.rollback_to(self._savepoint_name)
        except Exception as failure:
            if parent is not None:
                parent._failed(failure)
            if error is None:
                raise
            log.warning("rollback failed after %r: %s", error, failure)
        if error is None:
            raise TransactionAborted(
                f"the {'savepoint' if parent else 'transaction'} was rolled back: a statement "
                f"in it failed ({self._error})"
            ) from self._error

    # -- Queryable --

    def _runner(self) -> Runner:
        return self._usable()

    def _failed(self, error: BaseException) -> None:
        if self._state is _OPEN:
            self._state = _FAILED
            self._error = error

    def _usable(self) -> Session:
        if self._state is _OPEN and self._child is None:
            assert self._session is not None
            return self._session
        what = "savepoint" if self._parent else "transaction"
        if self._state is _FAILED:
            raise TransactionAborted(
                f"this {what} can only roll back: a statement in it failed ({self._error})"
            ) from self._error
        if self._child is not None:
            raise TransactionError(
                f"this {what} has a savepoint open: run statements through the savepoint"
            )
        if self._state is _NEW:
            raise TransactionError(f"this {what} has not begun: use it as 'async with'")
        raise TransactionError(f"this {what} has ended")

    async def _run_script(self, statement: Statement) -> None:
        """Run a script of several statements (for migrations)."""
        session = self._usable()
        try:
            await session.run_script(statement)
        except BaseException as error:
            self._failed(error)
            raise

    @property
    def _savepoint_name(self) -> str:
        return f"trunkline_savepoint_{self._depth}"

    def __repr__(self) -> str:
        what = f"savepoint {self._depth}" if self._parent else "transaction"
        return f"<Transaction {what} on {self._driver_name} {self._state}>"
