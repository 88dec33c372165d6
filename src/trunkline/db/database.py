"""The database: one interface, two drivers, picked by URL.

:func:`connect` opens a :class:`Database` on SQLite (the embedded default) or PostgreSQL.
It is a plain object, not a process: any process may use it, and a failure raises in the
caller, never in a supervisor. Open it in an application's start and close it in its stop.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any

from trunkline.otp import current_node

from .driver import Driver, Runner
from .exceptions import DatabaseClosed
from .migration import Migration, migrate
from .notifications import Hub, Subscription, check_channel
from .query import STATEMENTS
from .queryable import Queryable, Timing
from .transaction import Transaction
from .url import DEFAULT_URL, DatabaseURL

__all__ = ["Database", "connect"]


class Database(Queryable):
    """A connected database. Get one from :func:`connect`.

    Statements outside a transaction run on their own connection and commit on their own
    (on SQLite: reads on the reader connections, writes on the writer). Use
    :meth:`transaction` to group them.

    Example::

        async with db.connect("sqlite:///./trunkline.db") as database:
            await database.migrate({"chat": CHAT_MIGRATIONS})
            await database.execute("INSERT INTO rooms (id, name) VALUES ($1, $2)", 1, "lobby")
            row = await database.fetch_one("SELECT id, name FROM rooms WHERE id = $1", 1)
            print(row.name)                                   # lobby
            async with database.transaction() as tx:
                await tx.execute("UPDATE rooms SET name = $1 WHERE id = $2", "hall", 1)
                await tx.notify("rooms", "1")                 # sent when tx commits

    Attributes:
        url: the parsed URL (``str(database.url)`` masks the password).
    """

    __slots__ = ("_closed", "_driver", "_hub", "url")

    def __init__(self, url: DatabaseURL, driver: Driver, hub: Hub) -> None:
        self.url = url
        self._driver = driver
        self._hub = hub
        self._dialect = driver.dialect
        self._driver_name = driver.name
        self._timing = Timing(current_node().clock)
        self._statements = STATEMENTS[driver.dialect]
        self._closed = False

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``: which SQL to write when it differs."""
        return self._driver_name

    @property
    def closed(self) -> bool:
        return self._closed

    def transaction(self) -> Transaction:
        """A transaction, used as ``async with``: see :class:`Transaction`.

        On SQLite it holds the one writer from ``async with`` to the end of the block, so
        keep it short, and run its statements through it (a write through the database
        from the same task would wait for it forever, and raises ``TransactionError``).
        """
        return Transaction(self)

    def listen(self, *channels: str) -> _Listen:
        """Subscribe to notifications on ``channels``; use as ``async with`` (which closes
        the subscription at the end) or ``await`` it.

        Listening has begun when it returns: every notification committed after that is
        delivered, once per subscription however often its channel is named. Returns a
        :class:`~trunkline.db.Subscription`.

        Raises:
            TypeError, ValueError: no channel, or a bad one (see :meth:`notify`).
            CannotConnect: PostgreSQL: the listening connection cannot be opened.
        """
        if not channels:
            raise ValueError("listen needs at least one channel")
        return _Listen(self, tuple(check_channel(channel) for channel in channels))

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send ``payload`` to the listeners of ``channel``, now. In a transaction, use
        ``tx.notify``: it is sent when the transaction commits.

        Args:
            channel: 1 to 63 bytes; on PostgreSQL, a channel of the whole database.
            payload: text; PostgreSQL limits it to 8000 bytes.

        Raises:
            TypeError, ValueError: a channel that is not a string or has not 1 to 63 bytes;
                a payload that is not a string.
            QueryError: PostgreSQL refused it (a payload too long).
        """
        check_channel(channel)
        if not isinstance(payload, str):
            raise TypeError(f"a notification payload is a string, got {payload!r}")
        self._check_open()
        await self._driver.notify(channel, payload)

    async def migrate(self, components: Mapping[str, Sequence[Migration]]) -> dict[str, list[int]]:
        """Apply the migrations not yet applied, component by component, each in its own
        transaction. Safe to call from several nodes at once. See ``trunkline.db.migration``.

        Args:
            components: component name -> its migrations, in increasing version order.

        Returns:
            the versions this call applied, by component (empty when all were applied).

        Raises:
            MigrationChecksumMismatch: an applied migration's SQL has changed (nothing
                applied).
            MigrationError: a migration failed (nothing of it applied; those before stay).
            TypeError, ValueError: ``components`` is malformed.
        """
        return await migrate(self, components)

    async def close(self) -> None:
        """Close every connection (SQLite: stop the threads) and every subscription.
        Idempotent; any use afterwards raises ``DatabaseClosed``."""
        if self._closed:
            return
        self._closed = True
        self._hub.close_all()
        await self._driver.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Database {self.url}{' closed' if self._closed else ''}>"

    def _runner(self) -> Runner:
        return self._driver

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosed(f"{self.url.target} is closed")


class _Listen:
    """``database.listen(...)``: awaitable, or an ``async with`` that closes at the end."""

    __slots__ = ("_channels", "_database", "_subscription")

    def __init__(self, database: Database, channels: tuple[str, ...]) -> None:
        self._database = database
        self._channels = channels
        self._subscription: Subscription | None = None

    async def _subscribe(self) -> Subscription:
        self._database._check_open()
        return await self._database._hub.subscribe(self._channels)

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self._subscribe().__await__()

    async def __aenter__(self) -> Subscription:
        self._subscription = await self._subscribe()
        return self._subscription

    async def __aexit__(self, *exc_info: object) -> None:
        if self._subscription is not None:
            await self._subscription.close()


class _Connect:
    """``connect(url)``: awaitable, or an ``async with`` that closes at the end."""

    __slots__ = ("_database", "_url")

    def __init__(self, url: str) -> None:
        self._url = DatabaseURL.parse(url)
        self._database: Database | None = None

    async def _open(self) -> Database:
        url = self._url
        driver: Driver
        hub = Hub()
        if url.dialect == "sqlite":
            from .drivers.sqlite import SQLiteDriver

            driver = SQLiteDriver(url, hub)
        else:
            from .drivers.postgres import PostgresDriver

            driver = PostgresDriver(url, hub)
        hub.listening = driver
        await driver.open()
        return Database(url, driver, hub)

    def __await__(self) -> Generator[Any, None, Database]:
        return self._open().__await__()

    async def __aenter__(self) -> Database:
        self._database = await self._open()
        return self._database

    async def __aexit__(self, *exc_info: object) -> None:
        if self._database is not None:
            await self._database.close()


def connect(url: str = DEFAULT_URL) -> _Connect:
    """Open the database at ``url``: ``await db.connect(url)``, or ``async with
    db.connect(url) as database`` to close it at the end.

    ::

        sqlite:///./trunkline.db           a file in the working directory (the default)
        sqlite:////abs/path/data.db        an absolute path
        sqlite:///:memory:                 a private in-memory database (for tests)
        postgresql://user:pw@host:5432/db  PostgreSQL (also postgres://)

    Options in the query string: SQLite ``readers`` (reader connections, 4),
    ``busy_timeout_s`` (5), ``synchronous`` (``full``), ``temp_store`` (``memory``);
    PostgreSQL ``min_size`` (1), ``max_size`` (10), ``connect_timeout_s`` (10),
    ``reconnect_timeout_s`` (10), ``command_timeout_s`` (60: a statement with no answer by
    then fails with ``ConnectionLost``; 0: none), ``health_check_interval_s`` (15: how often
    the listening connection is checked); other PostgreSQL parameters go to asyncpg and the
    server (``?search_path=app``). See docs/database.md.

    Raises:
        InvalidURL: at once, for a URL it cannot use (its message masks the password).
        CannotConnect: when awaited, for a server it cannot reach (naming host and port and
            the cause) or a file it cannot open. No retry: at start, failing is the
            supervisor's business.
    """
    return _Connect(url)
