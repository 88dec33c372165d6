"""What the chat server's tests share: a migrated database on each backend.

Every test that touches the database runs twice, on SQLite (a file) and on the real
PostgreSQL (a schema of its own; see ``tests/pg.py``), through the ``backend`` fixture of
``conftest.py``. The tests wait on real I/O, so they run on a ``MockClock`` whose autojump
waits :data:`IDLE_S` of real idleness before moving virtual time on: the database answers
well within it, and expiry and rate-limit windows still cost no real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pg
from trunkline import chat, db

__all__ = ["IDLE_S", "Backend"]

IDLE_S = 0.05
"""How long the test loop must be idle, for real, before virtual time jumps."""


class Backend:
    """A database engine the tests run on: ``"sqlite"`` or ``"postgresql"``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self._directory = directory
        self._count = 0

    def __repr__(self) -> str:
        return self.name

    @asynccontextmanager
    async def database(
        self, *, migrate: bool = True, **options: object
    ) -> AsyncIterator[db.Database]:
        """A fresh database, migrated for the ``"chat"`` component unless ``migrate`` is
        false."""
        async with self.databases(1, migrate=migrate, **options) as [database]:
            yield database

    @asynccontextmanager
    async def databases(
        self, count: int, *, migrate: bool = True, **options: object
    ) -> AsyncIterator[Sequence[db.Database]]:
        """``count`` connections to one fresh database: as many nodes."""
        if self.name == "sqlite":
            self._count += 1
            path = self._directory / f"chat-{self._count}.db"
            query = "&".join(f"{k}={v}" for k, v in options.items())
            databases = [
                await db.connect(f"sqlite:///{path}" + (f"?{query}" if query else ""))
                for _ in range(count)
            ]
            try:
                if migrate:
                    await databases[0].migrate({chat.COMPONENT: chat.MIGRATIONS})
                yield databases
            finally:
                for database in databases:
                    await database.close()
            return
        # No statement timeout: it runs on the test's virtual clock, which jumps whenever the
        # loop idles for IDLE_S of real time, so a statement slower than that would "time out".
        options.setdefault("command_timeout_s", 0)
        async with pg.postgres_schema(count, pg.POSTGRES_URL, **options) as nodes:
            if migrate:
                await nodes[0].migrate({chat.COMPONENT: chat.MIGRATIONS})
            yield nodes
