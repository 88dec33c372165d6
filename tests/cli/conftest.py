"""Fixtures of the command line's tests: a database URL on each backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

import pg


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not migrated: the commands do it), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    pg.require_postgres()
    schema = f"test_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE SCHEMA {schema}"))
    try:
        yield pg.with_options(pg.POSTGRES_URL, search_path=schema)
    finally:
        asyncio.run(_admin(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, for what the backend does not change."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


async def _admin(sql: str) -> Any:
    connection = await asyncpg.connect(pg.POSTGRES_URL)
    try:
        return await connection.execute(sql)
    finally:
        await connection.close()
