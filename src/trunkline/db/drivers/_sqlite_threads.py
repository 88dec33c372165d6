"""What runs on the SQLite driver's threads: the connections, the work, the types.

A job is ``(future, function, statement, args)``. The thread runs
``function(connection, statement.text, args)`` and hands the outcome to the event loop with
``loop.call_soon_threadsafe``: ``resolve(future, result)`` or ``reject(job, error)``. The
callbacks run on the loop, where the driver maps errors and schedules the next job.

Types: integers, floats, text, blobs and NULL are SQLite's own. Columns declared ``BOOLEAN``
read back as ``bool``; ``datetime`` values are stored as text in UTC in SQLite's own format,
``YYYY-MM-DD HH:MM:SS[.ffffff]`` (naive ones taken as UTC), so they compare in time order with
``CURRENT_TIMESTAMP`` and ``datetime('now')``, and columns declared ``TIMESTAMPTZ`` (or
``TIMESTAMP``) read back as aware ``datetime``\\ s in UTC. This registers a ``datetime`` adapter and
those three converters with the ``sqlite3`` module, which keeps them process-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Any, TypeAlias

from ..query import Statement

__all__ = [
    "Job",
    "SQLiteRow",
    "begin",
    "commit",
    "execute",
    "execute_many",
    "fetch",
    "fetch_one",
    "fetch_val",
    "open_connection",
    "plain",
    "resolve",
    "rollback",
    "script",
    "serve",
    "split_script",
]

Work: TypeAlias = Callable[[sqlite3.Connection, str, Any], Any]
Job: TypeAlias = tuple["asyncio.Future[Any]", Work, Statement, Any]
Reject: TypeAlias = Callable[[Job, BaseException], None]
Resolve: TypeAlias = Callable[["asyncio.Future[Any]", Any], None]
Post: TypeAlias = Callable[..., Any]


# -- types -------------------------------------------------------------------------------------


def _adapt_datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # SQLite's own format, 'YYYY-MM-DD HH:MM:SS' (CURRENT_TIMESTAMP, datetime('now')), in UTC,
    # with '.ffffff' when there are microseconds: text order is time order, also against
    # SQLite's own timestamps, and a whole second is the very text CURRENT_TIMESTAMP writes.
    return value.isoformat(" ")


def _convert_timestamp(raw: bytes) -> datetime:
    # Also reads SQLite's own timestamps and the earlier 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00'.
    value = datetime.fromisoformat(raw.decode())
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _convert_boolean(raw: bytes) -> bool:
    return raw not in (b"0", b"0.0", b"")


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("TIMESTAMPTZ", _convert_timestamp)
sqlite3.register_converter("TIMESTAMP", _convert_timestamp)
sqlite3.register_converter("BOOLEAN", _convert_boolean)


class SQLiteRow(sqlite3.Row):
    """``sqlite3.Row``, also read by attribute, compared like a tuple; see ``db.row``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except IndexError:
            raise AttributeError(f"row has no column {name!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except IndexError:
            return default

    def values(self) -> list[Any]:
        return list(self)

    def items(self) -> list[tuple[str, Any]]:
        return list(zip(self.keys(), self, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, sqlite3.Row):
            return super().__eq__(other)
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    __hash__ = sqlite3.Row.__hash__

    def __repr__(self) -> str:
        columns = " ".join(f"{key}={value!r}" for key, value in self.items())
        return f"<Row {columns}>"


def open_connection(path: str, options: Mapping[str, Any], writer: bool) -> sqlite3.Connection:
    """A connection set up for the driver: autocommit (transactions are begun explicitly),
    declared types converted, WAL (set by the writer), foreign keys enforced as PostgreSQL
    does, the URL's ``synchronous`` and ``temp_store``, and read-only unless ``writer``."""
    connection = sqlite3.connect(
        path,
        timeout=options["busy_timeout_s"],
        isolation_level=None,
        detect_types=sqlite3.PARSE_DECLTYPES,
        cached_statements=512,
    )
    try:
        connection.row_factory = SQLiteRow
        if writer:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={options['synchronous']}")
        # By default SQLite puts a statement's temporary data - the journal that lets one
        # statement of a transaction fail alone, a sort's or a window's b-tree - in a file of
        # its own, created, written and unlinked per statement. Inside a transaction (every
        # group commit is one) a batch of chat messages then cost 21 us a message against
        # 13 with it in memory.
        connection.execute(f"PRAGMA temp_store={options['temp_store']}")
        connection.execute("PRAGMA foreign_keys=ON")
        if not writer:
            connection.execute("PRAGMA query_only=ON")
    except BaseException:
        connection.close()
        raise
    return connection


# -- the work ----------------------------------------------------------------------------------


def execute(connection: sqlite3.Connection, sql: str, args: Any) -> int:
    before = connection.total_changes
    count = connection.execute(sql, args).rowcount
    if count < 0:
        # sqlite3 counts only statements that start with INSERT, UPDATE, DELETE or REPLACE;
        # for the rest (WITH ... INSERT, DDL) the total tells.
        count = connection.total_changes - before
    return count


def execute_many(connection: sqlite3.Connection, sql: str, args: Any) -> None:
    if connection.in_transaction:
        connection.executemany(sql, args)
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(sql, args)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def fetch(connection: sqlite3.Connection, sql: str, args: Any) -> list[Any]:
    return connection.execute(sql, args).fetchall()


def fetch_one(connection: sqlite3.Connection, sql: str, args: Any) -> Any:
    return connection.execute(sql, args).fetchone()


def fetch_val(connection: sqlite3.Connection, sql: str, args: Any) -> Any:
    row = connection.execute(sql, args).fetchone()
    return None if row is None else row[0]


def plain(connection: sqlite3.Connection, sql: str, args: Any) -> None:
    connection.execute(sql)


begin = plain


def commit(connection: sqlite3.Connection, sql: str, args: Any) -> None:
    try:
        connection.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (a deferred constraint, a full disk) leaves the transaction open;
        # the writer must come back clean whatever happens.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def rollback(connection: sqlite3.Connection, sql: str, args: Any) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def script(connection: sqlite3.Connection, sql: str, args: Any) -> None:
    # Not executescript(): it commits the open transaction first, and a migration must run
    # inside its own.
    for statement in split_script(sql):
        connection.execute(statement)


def split_script(sql: str) -> Iterator[str]:
    """The complete statements of a ``;``-separated script, as SQLite parses them (so a
    ``;`` inside a string, a comment or a trigger body does not split)."""
    start = 0
    for end, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : end + 1]):
            statement = sql[start : end + 1].strip()
            if statement != ";":
                yield statement
            start = end + 1
    rest = sql[start:].strip()
    if rest:
        yield rest


# -- the threads -------------------------------------------------------------------------------


def serve(
    jobs: SimpleQueue[Job | None],
    connect: Callable[[], sqlite3.Connection],
    loop: asyncio.AbstractEventLoop,
    ready: asyncio.Future[None],
    exited: asyncio.Future[None],
    on_result: Resolve,
    on_error: Reject,
    group_commit: bool = False,
) -> None:
    """A worker thread's life: open a connection, run jobs until ``None``, close it.

    With ``group_commit`` (the writer), statements outside transactions that are queued
    together run as one transaction: see :func:`_run_group`.
    """
    post = loop.call_soon_threadsafe
    try:
        connection = connect()
    except BaseException as error:
        post(_fail, ready, error)
        post(resolve, exited, None)
        return
    post(resolve, ready, None)
    get = jobs.get
    try:
        job = get()
        while job is not None:
            if group_commit and job[1] in _GROUPABLE and not connection.in_transaction:
                group, after, taken = _take_group(job, jobs)
                if len(group) > 1:
                    _run_group(connection, group, post, on_result, on_error)
                else:
                    _run(connection, job, post, on_result, on_error)
                job = after if taken else get()
            else:
                _run(connection, job, post, on_result, on_error)
                job = get()
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
    finally:
        connection.close()
        with contextlib.suppress(RuntimeError):
            post(resolve, exited, None)


def _run(
    connection: sqlite3.Connection, job: Job, post: Post, on_result: Resolve, on_error: Reject
) -> None:
    try:
        result = job[1](connection, job[2].text, job[3])
    except BaseException as error:
        post(on_error, job, error)
    else:
        post(on_result, job[0], result)


# Group commit. A statement outside a transaction is a transaction of its own, and on the
# writer the commit is most of its cost: the WAL frame written and synced, and one hand-off
# back to the loop. Statements queued together while the writer was busy - many callers
# writing at once - run as one transaction and come back in one hand-off. Each caller still
# hears of its statement only once it is committed, and sees what it would have seen alone:
# if any statement of the group fails, or the commit does, the group is rolled back and each
# statement runs again alone, for its own result or error.

MAX_GROUP = 256
"""The most statements one group commit takes."""


def _take_group(first: Job, jobs: SimpleQueue[Job | None]) -> tuple[list[Job], Job | None, bool]:
    """``first`` and the statements queued behind it that may share its transaction; then
    the job that ended the group and whether there was one (``None`` is the order to stop)."""
    group = [first]
    # This thread is the queue's only reader: not empty means get_nowait has a job (and a
    # lone statement, the common case, costs no Empty raised and caught).
    while len(group) < MAX_GROUP and not jobs.empty():
        job = jobs.get_nowait()
        if job is None or job[1] not in _GROUPABLE:
            return group, job, True
        group.append(job)
    return group, None, False


def _run_group(
    connection: sqlite3.Connection,
    group: list[Job],
    post: Post,
    on_result: Resolve,
    on_error: Reject,
) -> None:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except BaseException as error:
        # The write lock could not be had (another process held it past busy_timeout): each
        # statement alone would have failed the same way.
        for job in group:
            post(on_error, job, error)
        return
    try:
        results = [job[1](connection, job[2].text, job[3]) for job in group]
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        for job in group:
            _run(connection, job, post, on_result, on_error)
        return
    post(_resolve_group, group, results, on_result)


def _resolve_group(group: list[Job], results: list[Any], on_result: Resolve) -> None:
    for job, result in zip(group, results, strict=True):
        on_result(job[0], result)


_GROUPABLE = frozenset((execute, execute_many, fetch, fetch_one, fetch_val))


def resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
