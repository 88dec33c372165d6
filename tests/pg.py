"""The PostgreSQL server the tests use, for every package of tests.

The server is ``$TRUNKLINE_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``; ``scripts/test`` starts it). When it cannot be
reached, :func:`require_postgres` skips the test, naming it - except under ``CI=true``, where
it fails. :func:`postgres_schema` gives a test databases working in a schema of its own,
created and dropped around it. :class:`Proxy` stands between a test and the server, to take
the server away and bring it back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from trunkline import db
from trunkline.db.url import DatabaseURL

__all__ = [
    "POSTGRES_URL",
    "SERVER",
    "Proxy",
    "eventually",
    "postgres_schema",
    "require_postgres",
    "terminate",
    "through_port",
    "with_options",
]

POSTGRES_URL = os.environ.get(
    "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SERVER = DatabaseURL.parse(POSTGRES_URL)


def require_postgres() -> None:
    """Skip the calling test (fail it under ``CI=true``) when the server cannot be reached."""
    try:
        socket.create_connection((SERVER.host, SERVER.port), timeout=2).close()
    except OSError as error:
        message = (
            f"PostgreSQL is not reachable at {SERVER.host}:{SERVER.port} ({error}); "
            "scripts/test starts it, or set TRUNKLINE_TEST_POSTGRES_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def with_options(url: str, **options: object) -> str:
    """``url`` with ``options`` added to its query string."""
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@asynccontextmanager
async def postgres_schema(
    count: int = 1, url: str = POSTGRES_URL, **options: object
) -> AsyncIterator[Sequence[db.Database]]:
    """``count`` databases working in a new schema, dropped afterwards.

    Connection attempts have no timeout unless ``connect_timeout_s`` is given: on a mock
    clock, a virtual one would fire whenever the server takes longer than the autojump
    threshold to answer, as it may on a busy machine.
    """
    schema = f"test_{uuid.uuid4().hex[:12]}"
    options.setdefault("connect_timeout_s", 0)
    admin = await asyncpg.connect(POSTGRES_URL, timeout=None)
    await admin.execute(f"CREATE SCHEMA {schema}")
    databases: list[db.Database] = []
    try:
        for _ in range(count):
            databases.append(await db.connect(with_options(url, search_path=schema, **options)))
        yield databases
    finally:
        for database in databases:
            await database.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (really) for the server to show ``check``; it acts on its own time."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def terminate(pid: int) -> None:
    """Terminate the server's backend ``pid`` and wait until it is gone."""
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:
            found = await admin.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid)
            return found is None

        await eventually(gone, f"backend {pid} gone")
    finally:
        await admin.close()


class Proxy:
    """A TCP proxy to the server that a test can take down and bring back, on one port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for stream in self._streams:
            stream.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._streams.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection(SERVER.host, SERVER.port)
        self._streams |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()


def through_port(port: int) -> str:
    """The test server's URL, but reaching it through ``127.0.0.1:port``."""
    parts = urlsplit(POSTGRES_URL)
    user, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(
        parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}")
    )
