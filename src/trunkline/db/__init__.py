"""trunkline.db: one database interface, two drivers (SQLite, PostgreSQL), picked by URL.

::

    from trunkline import db

    async with db.connect("sqlite:///./trunkline.db") as database:
        await database.migrate({"chat": CHAT_MIGRATIONS})
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO rooms (id, name) VALUES ($1, $2)", 1, "lobby")
            await tx.notify("rooms", "1")
        room = await database.fetch_one("SELECT id, name FROM rooms WHERE id = $1", 1)

See ``docs/database.md``: URLs, statements and parameters, rows and types, transactions,
migrations, notifications, telemetry, errors.
"""

from .batches import Batches
from .database import Database, connect
from .exceptions import (
    CannotConnect,
    ConnectionLost,
    DatabaseClosed,
    DatabaseError,
    IntegrityError,
    InvalidURL,
    MigrationChecksumMismatch,
    MigrationError,
    QueryError,
    SubscriptionClosed,
    TransactionAborted,
    TransactionError,
    UniqueViolation,
)
from .migration import MIGRATION_EVENT, MIGRATIONS_TABLE, Migration
from .notifications import Notification, Subscription
from .query import Query
from .queryable import QUERY_EVENT, Queryable
from .row import Row
from .transaction import Transaction
from .url import DEFAULT_URL, DatabaseURL

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS_TABLE",
    "MIGRATION_EVENT",
    "QUERY_EVENT",
    "Batches",
    "CannotConnect",
    "ConnectionLost",
    "Database",
    "DatabaseClosed",
    "DatabaseError",
    "DatabaseURL",
    "IntegrityError",
    "InvalidURL",
    "Migration",
    "MigrationChecksumMismatch",
    "MigrationError",
    "Notification",
    "Query",
    "QueryError",
    "Queryable",
    "Row",
    "Subscription",
    "SubscriptionClosed",
    "Transaction",
    "TransactionAborted",
    "TransactionError",
    "UniqueViolation",
    "connect",
]
