"""The SQLite driver: one writer, a few readers, in WAL mode, off the event loop.

SQLite allows one writer at a time and, in WAL mode, any number of readers beside it, each
seeing the last committed state. So:

- One **writer** connection on a thread of its own runs every write, in order, from a queue.
  A transaction holds the writer for its whole duration (``BEGIN IMMEDIATE``): writes from
  elsewhere wait at a gate in the event loop, not on a lock in a thread.
- A few **reader** connections (``readers``, 4 by default, read-only), each on its own
  thread, run the statements that only read, outside transactions: each read goes to the
  reader that became idle last, or waits in a backlog. A statement guessed to be read-only
  that writes fails on its reader and is sent to the writer.
- ``:memory:`` is one private database, so it has the writer and no readers: reads go
  through the gate like writes.

A statement puts ``(future, function, statement, args)`` on a thread's queue and returns the
future; the thread runs the function on its connection and hands the outcome back with
``loop.call_soon_threadsafe``. That is one hand-off each way per statement, the least a
non-blocking SQLite can do. (aiosqlite would take three for a fetch - execute, fetch,
close the cursor - and has no reader pool or writer gate, which we would still have to
write.)

Types (``BOOLEAN``, ``TIMESTAMPTZ``) are described in ``_sqlite_threads``, with what runs on
the threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from queue import SimpleQueue
from typing import Any

from ..driver import Driver, Session
from ..exceptions import (
    CannotConnect,
    DatabaseClosed,
    IntegrityError,
    QueryError,
    TransactionError,
    UniqueViolation,
)
from ..notifications import Hub
from ..query import SQLITE, Statement
from ..row import Row
from ..url import DatabaseURL
from . import _sqlite_threads as work
from ._sqlite_threads import Job, SQLiteRow, Work

__all__ = ["SQLiteDriver", "SQLiteRow", "SQLiteSession"]

NAME = "sqlite"
_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _query_error(error: sqlite3.Error, statement: Statement) -> QueryError:
    message = str(error)
    code = getattr(error, "sqlite_errorname", None)
    if isinstance(error, sqlite3.IntegrityError):
        _, _, columns = message.partition(" constraint failed: ")
        kind = UniqueViolation if code in _UNIQUE else IntegrityError
        return kind(statement.name, NAME, message, code, columns or None)
    return QueryError(statement.name, NAME, message, code)


def _fail(job: Job, error: BaseException) -> None:
    """A job failed on its thread: its future gets the error, mapped if it is SQLite's, or a
    converter's (a TIMESTAMP column holding text that is not a time, written by hand)."""
    future = job[0]
    if not future.done():
        mapped: BaseException | None = None
        if isinstance(error, sqlite3.Error):
            mapped = _query_error(error, job[2])
        elif isinstance(error, ValueError):
            mapped = QueryError(job[2].name, NAME, f"a stored value does not read: {error}", None)
        if mapped is not None:
            mapped.__cause__ = error
            error = mapped
        future.set_exception(error)


class _Reader:
    """A reader thread's queue, and what the loop does when the thread finishes a job."""

    __slots__ = ("backlog", "driver", "idle", "jobs")

    def __init__(self, driver: SQLiteDriver) -> None:
        self.driver = driver
        self.jobs: SimpleQueue[Job | None] = SimpleQueue()
        # The driver's, held here too: on_result runs once per read.
        self.idle = driver._idle_readers
        self.backlog = driver._backlog

    def on_result(self, future: asyncio.Future[Any], result: Any) -> None:
        if not future.done():
            future.set_result(result)
        if self.backlog:
            self.driver._reader_free(self)
        else:
            self.idle.append(self)

    def on_error(self, job: Job, error: BaseException) -> None:
        driver = self.driver
        if getattr(error, "sqlite_errorname", None) == "SQLITE_READONLY" and not driver._closed:
            # Judged read-only, yet it writes (a function with side effects): the writer's.
            driver._submit_write(job)
        else:
            _fail(job, error)
        driver._reader_free(self)


class _TransactionWaiter:
    __slots__ = ("future", "task")

    def __init__(self, future: asyncio.Future[None], task: asyncio.Task[Any] | None) -> None:
        self.future = future
        self.task = task


class SQLiteDriver(Driver):
    """The SQLite driver; see the module. Made by :func:`~trunkline.db.connect`."""

    dialect = SQLITE
    name = NAME

    def __init__(self, url: DatabaseURL, hub: Hub) -> None:
        assert url.path is not None
        self._url = url
        self._hub = hub
        self._loop = asyncio.get_running_loop()
        self._writer: SimpleQueue[Job | None] = SimpleQueue()
        # Each reader has its own queue; a read goes to the reader that became idle last, so
        # that one thread on a warm connection serves a run of reads (a shared queue would
        # wake the thread that has slept longest, about 4 us more per read). When every
        # reader is busy, reads wait in the backlog.
        count = 0 if url.path == ":memory:" else url.options["readers"]
        self._idle_readers: list[_Reader] = []
        self._backlog: deque[Job] = deque()
        self._readers = [_Reader(self) for _ in range(count)]
        # Threads outlive a Database dropped without close(): this wakes them up to exit.
        self._finalizer = weakref.finalize(
            self, _stop_threads, [self._writer, *(reader.jobs for reader in self._readers)]
        )
        self._exits: list[asyncio.Future[None]] = []
        self._closed = False
        # The writer gate: whether a transaction holds the writer, the task whose it is, and
        # what waits for it, in arrival order: jobs (tuples) to queue and transactions to
        # let in.
        self._holding = False
        self._owner: asyncio.Task[Any] | None = None
        self._pending: deque[Job | _TransactionWaiter] = deque()

    async def open(self) -> None:
        url = self._url
        path, options = url.path, url.options
        assert path is not None

        def connect(writer: bool) -> Callable[[], sqlite3.Connection]:
            return lambda: work.open_connection(path, options, writer)

        # The writer first: it turns WAL on before any reader opens the file.
        try:
            await self._start(
                self._writer, connect(True), "writer", work.resolve, _fail, group_commit=True
            )
            for i, reader in enumerate(self._readers):
                await self._start(
                    reader.jobs, connect(False), f"reader-{i}", reader.on_result, reader.on_error
                )
                self._idle_readers.append(reader)
        except sqlite3.Error as error:
            await self.close()
            raise CannotConnect(url.target, error) from error

    async def _start(
        self,
        jobs: SimpleQueue[Job | None],
        connect: Callable[[], sqlite3.Connection],
        role: str,
        on_result: Callable[[asyncio.Future[Any], Any], None],
        on_error: Callable[[Job, BaseException], None],
        group_commit: bool = False,
    ) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        exited: asyncio.Future[None] = self._loop.create_future()
        self._exits.append(exited)
        thread = threading.Thread(
            target=work.serve,
            args=(jobs, connect, self._loop, ready, exited, on_result, on_error, group_commit),
            name=f"trunkline-db-sqlite-{role}",
            daemon=True,
        )
        thread.start()
        await ready

    # -- statements outside transactions --
    # Each returns the job's future: one await per statement, and no coroutine of our own.

    def execute(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[int]:
        return self._submit(work.execute, statement, args, statement.readonly)

    def execute_many(
        self, statement: Statement, args: Iterable[Sequence[Any]]
    ) -> asyncio.Future[None]:
        return self._submit(work.execute_many, statement, args, False)

    def fetch(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[list[Row]]:
        return self._submit(work.fetch, statement, args, statement.readonly)

    def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[Row | None]:
        return self._submit(work.fetch_one, statement, args, statement.readonly)

    def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        return self._submit(work.fetch_val, statement, args, statement.readonly)

    def _submit(
        self, function: Work, statement: Statement, args: Any, read: bool
    ) -> asyncio.Future[Any]:
        """Queue a job: on a reader when it is a ``read`` and there are readers, else on the
        writer (through the gate while a transaction holds it)."""
        if self._closed:
            raise DatabaseClosed(f"{self._url.target} is closed")
        future = self._loop.create_future()
        job = (future, function, statement, args)
        if read and self._readers:
            if self._idle_readers:
                self._idle_readers.pop().jobs.put(job)
            else:
                self._backlog.append(job)
        elif self._holding:
            self._submit_write(job)
        else:
            self._writer.put(job)
        return future

    def _reader_free(self, reader: _Reader) -> None:
        backlog = self._backlog
        while backlog:
            job = backlog.popleft()
            if not job[0].done():  # not cancelled while it waited
                reader.jobs.put(job)
                return
        self._idle_readers.append(reader)

    def _submit_write(self, job: Job) -> None:
        if not self._holding:
            self._writer.put(job)
            return
        if self._owner is not None and self._owner is asyncio.current_task():
            raise TransactionError(
                "this task holds the SQLite writer in a transaction: a statement through the "
                "database would wait for that transaction forever; run it through the "
                "transaction (tx.execute, tx.fetch...)"
            )
        self._pending.append(job)

    # -- transactions --

    async def begin(self) -> SQLiteSession:
        if self._closed:
            raise DatabaseClosed(f"{self._url.target} is closed")
        await self._hold_writer()
        session = SQLiteSession(self)
        try:
            await session._submit(work.begin, _BEGIN, ())
        except BaseException:
            # Cancelled while it waited, the BEGIN still runs on the writer thread: undo it
            # before anything let in after us (the queue is FIFO; a no-op if it did not run).
            if not self._closed:
                undo: asyncio.Future[None] = self._loop.create_future()
                undo.add_done_callback(_retrieve)
                self._writer.put((undo, work.rollback, _ROLLBACK, ()))
            self._let_go_of_writer()
            raise
        return session

    async def _hold_writer(self) -> None:
        task = asyncio.current_task()
        if not self._holding and not self._pending:
            self._holding, self._owner = True, task
            return
        if self._owner is not None and self._owner is task:
            raise TransactionError(
                "this task already holds the SQLite writer in a transaction: use "
                "tx.transaction() for a nested one (a savepoint)"
            )
        waiter = _TransactionWaiter(self._loop.create_future(), task)
        self._pending.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._let_go_of_writer()  # let in, then cancelled: pass it on
            raise

    def _let_go_of_writer(self) -> None:
        self._holding, self._owner = False, None
        pending = self._pending
        while pending:
            item = pending.popleft()
            if type(item) is tuple:
                if not item[0].done():
                    self._writer.put(item)
            elif isinstance(item, _TransactionWaiter) and not item.future.done():
                self._holding, self._owner = True, item.task
                item.future.set_result(None)
                return

    # -- notifications --

    async def notify(self, channel: str, payload: str) -> None:
        self._hub.publish(channel, payload)

    # -- closing --

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        futures: list[asyncio.Future[Any]] = [job[0] for job in self._backlog]
        for item in self._pending:
            futures.append(item.future if isinstance(item, _TransactionWaiter) else item[0])
        self._pending.clear()
        self._backlog.clear()
        for future in futures:
            if not future.done():
                future.set_exception(DatabaseClosed(f"{self._url.target} is closed"))
        self._finalizer()
        await asyncio.gather(*self._exits)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Read the outcome of a job nobody awaits, so that a failure is not reported as lost."""
    if not future.cancelled():
        future.exception()


def _stop_threads(queues: list[SimpleQueue[Job | None]]) -> None:
    for jobs in queues:
        jobs.put(None)


_BEGIN = Statement("begin", "BEGIN IMMEDIATE", False)
_COMMIT = Statement("commit", "COMMIT", False)
_ROLLBACK = Statement("rollback", "ROLLBACK", False)


class SQLiteSession(Session):
    """A transaction on the writer connection, which it holds until commit or rollback.

    Its jobs go straight to the writer's queue, past the gate that it holds.
    """

    def __init__(self, driver: SQLiteDriver) -> None:
        self._driver = driver
        self._notifications: list[tuple[str, str]] = []
        self._savepoints: list[tuple[str, int]] = []  # (name, notifications before it)

    def _submit(self, function: Work, statement: Statement, args: Any) -> asyncio.Future[Any]:
        driver = self._driver
        if driver._closed:
            raise DatabaseClosed(f"{driver._url.target} is closed")
        future = driver._loop.create_future()
        driver._writer.put((future, function, statement, args))
        return future

    def execute(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[int]:
        return self._submit(work.execute, statement, args)

    def execute_many(
        self, statement: Statement, args: Iterable[Sequence[Any]]
    ) -> asyncio.Future[None]:
        return self._submit(work.execute_many, statement, args)

    def fetch(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[list[Row]]:
        return self._submit(work.fetch, statement, args)

    def fetch_one(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[Row | None]:
        return self._submit(work.fetch_one, statement, args)

    def fetch_val(self, statement: Statement, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        return self._submit(work.fetch_val, statement, args)

    async def run_script(self, statement: Statement) -> None:
        await self._submit(work.script, statement, ())

    async def savepoint(self, name: str) -> None:
        await self._submit(work.plain, Statement("savepoint", f"SAVEPOINT {name}", False), ())
        self._savepoints.append((name, len(self._notifications)))

    async def release(self, name: str) -> None:
        self._forget(name)
        sql = f"RELEASE SAVEPOINT {name}"
        await self._submit(work.plain, Statement("release savepoint", sql, False), ())

    async def rollback_to(self, name: str) -> None:
        del self._notifications[self._forget(name) :]
        sql = f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        await self._submit(work.script, Statement("rollback to savepoint", sql, False), ())

    def _forget(self, name: str) -> int:
        while self._savepoints:
            savepoint, notified = self._savepoints.pop()
            if savepoint == name:
                return notified
        raise TransactionError(f"no savepoint {name!r}")

    async def commit(self) -> None:
        driver = self._driver
        notifications, hub = self._notifications, driver._hub

        def publish(future: asyncio.Future[None]) -> None:
            # Once queued, the COMMIT runs whether or not this task still waits for it: its
            # notifications go with its outcome, not with the waiter.
            if not future.cancelled() and future.exception() is None:
                hub.publish_all(notifications)

        try:
            committed = self._submit(work.commit, _COMMIT, ())
            committed.add_done_callback(publish)
            await asyncio.shield(committed)
        finally:
            # Anything queued from here runs after the COMMIT (or ROLLBACK) in the queue.
            driver._let_go_of_writer()

    async def rollback(self) -> None:
        self._notifications.clear()
        try:
            await self._submit(work.rollback, _ROLLBACK, ())
        finally:
            self._driver._let_go_of_writer()

    async def notify(self, channel: str, payload: str) -> None:
        self._notifications.append((channel, payload))
