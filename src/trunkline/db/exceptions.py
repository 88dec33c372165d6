"""Every error the database layer raises, under one root: :class:`DatabaseError`.

Driver errors (``sqlite3.Error``, ``asyncpg`` exceptions) never escape: each is turned into one
of these, with the driver's exception as ``__cause__``. Arguments that are wrong in themselves
(a ``Query`` with no SQL, a channel name that is not a string) raise ``TypeError`` or
``ValueError`` as usual.

::

    DatabaseError
    ├── InvalidURL                  (also a ValueError)
    ├── CannotConnect
    ├── ConnectionLost
    ├── DatabaseClosed
    ├── QueryError
    │   └── IntegrityError
    │       └── UniqueViolation
    ├── TransactionError
    │   └── TransactionAborted
    ├── SubscriptionClosed
    └── MigrationError
        └── MigrationChecksumMismatch
"""

from __future__ import annotations

__all__ = [
    "CannotConnect",
    "ConnectionLost",
    "DatabaseClosed",
    "DatabaseError",
    "IntegrityError",
    "InvalidURL",
    "MigrationChecksumMismatch",
    "MigrationError",
    "QueryError",
    "SubscriptionClosed",
    "TransactionAborted",
    "TransactionError",
    "UniqueViolation",
]


class DatabaseError(Exception):
    """The root of every error raised by ``trunkline.db``."""


class InvalidURL(DatabaseError, ValueError):
    """Raised by :func:`~trunkline.db.connect` for a URL it cannot use: an unknown scheme, a
    missing path or database, a bad port, an unknown or malformed option.

    The message names the URL with its password masked, and what was expected.

    Attributes:
        url: the URL, password masked.
    """

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"invalid database URL {url!r}: {problem}")
        self.url = url


class CannotConnect(DatabaseError):
    """Raised when the database cannot be reached or opened: by
    :func:`~trunkline.db.connect` at once, and by a query when reconnecting after a lost
    connection still fails once ``reconnect_timeout_s`` has passed.

    Attributes:
        target: what was being reached: ``host:port/database`` or the SQLite file.
        cause: the underlying error (also ``__cause__``).
    """

    def __init__(self, target: str, cause: BaseException) -> None:
        super().__init__(f"cannot connect to {target}: {_describe(cause)}")
        self.target = target
        self.cause = cause


class ConnectionLost(DatabaseError):
    """Raised by a statement whose connection dropped while it ran (the server restarted,
    the backend was terminated, the network failed), or, on PostgreSQL, that got no answer
    within ``command_timeout_s`` (the connection may be dead without a word); and by
    ``listen`` when the listening connection dropped while the ``LISTEN`` was on its way.

    The statement may or may not have taken effect: it is not replayed. The connection is
    dropped and the next use opens a new one (with backoff, see :class:`CannotConnect`).
    Inside a transaction, the transaction is gone: the block ends with this error.

    Attributes:
        statement: the statement's name.
        driver: ``"postgresql"`` or ``"sqlite"``.
    """

    def __init__(self, statement: str, driver: str, cause: BaseException) -> None:
        super().__init__(f"{statement} on {driver}: connection lost: {_describe(cause)}")
        self.statement = statement
        self.driver = driver


class DatabaseClosed(DatabaseError):
    """Raised by any use of a :class:`~trunkline.db.Database` after ``close()``."""


class QueryError(DatabaseError):
    """Raised when the database refused or failed a statement: a syntax error, a missing table,
    a wrong number or type of arguments, a lock that could not be had in time.

    Attributes:
        statement: the statement's name (a :class:`~trunkline.db.Query`'s name, or the first
            words of a plain string).
        driver: ``"postgresql"`` or ``"sqlite"``.
        message: the driver's message.
        code: the driver's error code: PostgreSQL's SQLSTATE (``"42P01"``) or SQLite's
            extended result code name (``"SQLITE_ERROR"``); ``None`` when there is none.
    """

    def __init__(self, statement: str, driver: str, message: str, code: str | None = None) -> None:
        super().__init__(f"{statement} on {driver}: {message}")
        self.statement = statement
        self.driver = driver
        self.message = message
        self.code = code


class IntegrityError(QueryError):
    """Raised when a statement violates a constraint: unique, primary key, foreign key,
    not null, check.

    Attributes:
        constraint: the constraint's name on PostgreSQL; on SQLite the columns it names
            (``"users.email"``) when it names any; else ``None``.
    """

    def __init__(
        self,
        statement: str,
        driver: str,
        message: str,
        code: str | None = None,
        constraint: str | None = None,
    ) -> None:
        super().__init__(statement, driver, message, code)
        self.constraint = constraint


class UniqueViolation(IntegrityError):
    """Raised when a statement would duplicate a unique or primary key: the error to catch
    for "insert unless it exists" (or use ``ON CONFLICT``, which both drivers support)."""


class TransactionError(DatabaseError):
    """Raised when a transaction is used in a way that cannot work: a query after its block
    ended, a query on a transaction while one of its savepoints is open, or, on SQLite, a
    write through the database (not the transaction) from the task that holds the writer,
    which would wait for itself forever."""


class TransactionAborted(TransactionError):
    """Raised by a query on a transaction (or savepoint) in which an earlier statement failed,
    and at the end of such a block that did not raise: the transaction was rolled back.

    Both drivers behave alike: after a failure the block can only roll back. Put a statement
    that may fail in a nested ``transaction()`` (a savepoint) to carry on after it.
    """


class SubscriptionClosed(DatabaseError):
    """Raised by :meth:`~trunkline.db.Subscription.get` once the subscription, or its
    database, was closed."""


class MigrationError(DatabaseError):
    """Raised by :meth:`~trunkline.db.Database.migrate` when a migration fails. Nothing of
    that migration was applied (each runs in its own transaction); the migrations before it
    stay applied.

    Attributes:
        component: the component, e.g. ``"jobs"``.
        version: the migration's version.
        name: the migration's name.
    """

    def __init__(self, component: str, version: int, name: str, problem: str) -> None:
        super().__init__(f"migration {component} v{version} ({name}) failed: {problem}")
        self.component = component
        self.version = version
        self.name = name


class MigrationChecksumMismatch(MigrationError):
    """Raised by :meth:`~trunkline.db.Database.migrate`, before it applies anything, when an
    already-applied migration's SQL has changed since it was applied. Applied migrations are
    history: add a new migration instead of editing an old one."""

    def __init__(self, component: str, version: int, name: str) -> None:
        DatabaseError.__init__(
            self,
            f"migration {component} v{version} ({name}) was changed after it was applied: "
            "its checksum differs from the one recorded in trunkline_migrations; "
            "add a new migration instead of editing an applied one",
        )
        self.component = component
        self.version = version
        self.name = name


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
