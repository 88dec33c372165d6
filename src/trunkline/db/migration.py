"""Versioned schema migrations, per component, applied on start.

A component (``jobs``, ``chat``, ``notify``...) owns an ordered list of :class:`Migration`\\ s;
``await database.migrate({"jobs": JOBS_MIGRATIONS, "chat": CHAT_MIGRATIONS})`` applies those
not applied yet, in version order, each in its own transaction together with its record in
``trunkline_migrations``::

    trunkline_migrations (component, version, name, checksum, applied_at)

- **Exactly once**, however many nodes start at once: each migration's transaction first takes
  the migration lock (PostgreSQL: ``pg_advisory_xact_lock``; SQLite: the transaction's
  ``BEGIN IMMEDIATE``, the one writer), then checks the record again.
- **All or nothing**: a migration that fails leaves nothing behind, and ``migrate`` raises
  ``MigrationError`` naming the component, version, name and the database's message. The
  migrations before it stay applied.
- **History is not rewritten**: the checksum of each applied migration's SQL is recorded; if
  the SQL has changed since, ``migrate`` raises ``MigrationChecksumMismatch`` before applying
  anything. Python migrations have no checksum.

SQL runs as a script (several ``;``-separated statements, no parameters). Write the same DDL
for both drivers where you can: ``BOOLEAN``, ``TIMESTAMPTZ``, ``TEXT``, ``BIGINT``,
``DOUBLE PRECISION`` and ``BYTEA``/``BLOB`` mean what they should on both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trunkline.otp import telemetry

from .exceptions import DatabaseError, MigrationChecksumMismatch, MigrationError
from .query import Query, Statement

if TYPE_CHECKING:
    from .database import Database
    from .transaction import Transaction

__all__ = ["MIGRATIONS_TABLE", "MIGRATION_EVENT", "Migration", "migrate"]

log = logging.getLogger("trunkline.db")

MIGRATIONS_TABLE = "trunkline_migrations"

MIGRATION_EVENT = ("trunkline", "db", "migration")
"""The prefix of the span around each migration that ``migrate`` applies."""

# One fixed key for every trunkline migrator on a server: the first 8 bytes of
# sha256(b"trunkline_migrations"), as a signed bigint.
_LOCK_KEY = int.from_bytes(hashlib.sha256(MIGRATIONS_TABLE.encode()).digest()[:8], signed=True)

_CREATE = Query(
    "db.migrations.create",
    f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
        component TEXT NOT NULL,
        version BIGINT NOT NULL,
        name TEXT NOT NULL,
        checksum TEXT,
        applied_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (component, version)
    )""",
)
_LOCK_SCRIPT = Statement("db.migrations.lock", f"SELECT pg_advisory_xact_lock({_LOCK_KEY})", False)
_APPLIED = Query(
    "db.migrations.applied",
    f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} WHERE component = $1",
)
_IS_APPLIED = Query(
    "db.migrations.is_applied",
    f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE component = $1 AND version = $2",
)
_RECORD = Query(
    "db.migrations.record",
    f"INSERT INTO {MIGRATIONS_TABLE} (component, version, name, checksum, applied_at) "
    "VALUES ($1, $2, $3, $4, $5)",
)


@dataclass(frozen=True)
class Migration:
    """One step of a component's schema.

    Give exactly one of: ``sql`` (both drivers), ``postgresql`` and ``sqlite`` (one script
    each), or ``run`` (an async function given the migration's transaction, for what SQL
    alone cannot do; ``tx.dialect`` says which driver it runs on).

    Args:
        version: a positive integer; a component's versions increase along its list.
        name: what it does, for people: ``"create jobs"``.

    Raises:
        ValueError: a version below 1, an empty name, or not exactly one way to migrate.

    Example::

        JOBS = [
            Migration(1, "create jobs", \"\"\"
                CREATE TABLE jobs (id BIGINT PRIMARY KEY, queue TEXT NOT NULL,
                                   inserted_at TIMESTAMPTZ NOT NULL);
                CREATE INDEX jobs_queue ON jobs (queue);
            \"\"\"),
            Migration(2, "jobs state", postgresql="ALTER TABLE jobs ADD state TEXT ...",
                      sqlite="ALTER TABLE jobs ADD state TEXT ..."),
            Migration(3, "backfill", run=backfill_states),
        ]
        await database.migrate({"jobs": JOBS})
    """

    version: int
    name: str
    sql: str | None = None
    postgresql: str | None = None
    sqlite: str | None = None
    run: Callable[[Transaction], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version < 1:
            raise ValueError(f"a migration version is an integer >= 1, got {self.version!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"migration v{self.version} needs a name")
        ways = [
            self.sql is not None,
            self.postgresql is not None or self.sqlite is not None,
            self.run is not None,
        ]
        if sum(ways) != 1 or (ways[1] and (self.postgresql is None or self.sqlite is None)):
            raise ValueError(
                f"migration v{self.version} ({self.name}): give sql=, or postgresql= and "
                "sqlite=, or run="
            )

    def script(self, dialect: str) -> str | None:
        """The SQL to run on ``dialect`` (``"postgresql"`` or ``"sqlite"``); ``None`` for a
        Python migration."""
        if self.sql is not None:
            return self.sql
        return self.postgresql if dialect == "postgresql" else self.sqlite

    def checksum(self, dialect: str) -> str | None:
        """The SHA-256 of :meth:`script` (outer whitespace ignored); ``None`` for a Python
        migration."""
        script = self.script(dialect)
        return None if script is None else hashlib.sha256(script.strip().encode()).hexdigest()


async def migrate(
    database: Database, components: Mapping[str, Sequence[Migration]]
) -> dict[str, list[int]]:
    """Apply the migrations not yet applied; see the module and ``Database.migrate``."""
    plan = _check_plan(components)
    dialect = database.dialect
    async with database.transaction() as tx:
        await _lock(tx)
        await tx.execute(_CREATE)
    pending: list[tuple[str, Migration]] = []
    for component, migrations in plan.items():
        recorded = {row[0]: row for row in await database.fetch(_APPLIED, component)}
        known = set()
        for migration in migrations:
            known.add(migration.version)
            row = recorded.get(migration.version)
            if row is None:
                pending.append((component, migration))
                continue
            checksum = migration.checksum(dialect)
            if row[2] is not None and checksum is not None and row[2] != checksum:
                raise MigrationChecksumMismatch(component, migration.version, migration.name)
        unknown = sorted(set(recorded) - known)
        if unknown:
            log.warning(
                "%s has migrations of %r applied that this code does not know: %s "
                "(is this code older than the database?)",
                MIGRATIONS_TABLE,
                component,
                ", ".join(f"v{version}" for version in unknown),
            )
    applied: dict[str, list[int]] = {}
    for component, migration in pending:
        if await _apply(database, component, migration):
            applied.setdefault(component, []).append(migration.version)
    return applied


async def _apply(database: Database, component: str, migration: Migration) -> bool:
    version, name = migration.version, migration.name
    metadata = {
        "component": component,
        "version": version,
        "name": name,
        "driver": database.dialect,
    }
    with telemetry.span(MIGRATION_EVENT, metadata) as span:
        try:
            async with database.transaction() as tx:
                await _lock(tx)
                if await tx.fetch_val(_IS_APPLIED, component, version) is not None:
                    span.set(applied=False)  # another node was first
                    return False
                script = migration.script(database.dialect)
                if script is not None:
                    label = f"migration {component} v{version}"
                    await tx._run_script(Statement(label, script, False))
                else:
                    assert migration.run is not None
                    await migration.run(tx)
                await tx.execute(
                    _RECORD,
                    component,
                    version,
                    name,
                    migration.checksum(database.dialect),
                    database._timing.clock.now(),
                )
        except DatabaseError as error:
            raise MigrationError(component, version, name, str(error)) from error
        except Exception as error:
            raise MigrationError(
                component, version, name, f"{type(error).__name__}: {error}"
            ) from error
        span.set(applied=True)
    log.info("applied migration %s v%d (%s)", component, version, name)
    return True


async def _lock(tx: Transaction) -> None:
    # SQLite needs nothing more: the transaction holds the one writer (BEGIN IMMEDIATE).
    # On PostgreSQL the wait for another node's migrations may be long: it runs as a script,
    # which command_timeout_s does not limit.
    if tx.dialect == "postgresql":
        await tx._run_script(_LOCK_SCRIPT)


def _check_plan(components: Mapping[str, Sequence[Migration]]) -> dict[str, list[Migration]]:
    if not isinstance(components, Mapping):
        raise TypeError(
            f"migrate takes a mapping of component name to migrations, got {components!r}"
        )
    plan = {}
    for component, migrations in components.items():
        if not isinstance(component, str) or not component:
            raise ValueError(f"a component name is a non-empty string, got {component!r}")
        previous = 0
        for migration in migrations:
            if not isinstance(migration, Migration):
                raise TypeError(f"component {component!r}: not a Migration: {migration!r}")
            if migration.version <= previous:
                raise ValueError(
                    f"component {component!r}: migration versions must increase along the "
                    f"list; v{migration.version} comes after v{previous}"
                )
            previous = migration.version
        plan[component] = list(migrations)
    return plan
