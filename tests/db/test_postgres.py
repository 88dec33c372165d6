"""The PostgreSQL driver: the shared conformance suite against the real server, and what is
PostgreSQL's own: lost connections and reconnecting, the LISTEN connection coming back, an
unreachable server.

The server is ``$TRUNKLINE_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``; ``scripts/test`` starts it). When it cannot be
reached these tests are skipped, naming it, except under ``CI=true``, where they fail. Each
test works in a schema of its own, created and dropped around it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from db_conformance import KV, WAIT_S, DatabaseConformance

from trunkline import db
from trunkline.db.url import DatabaseURL
from trunkline.otp import MockClock
from trunkline.otp.testing import wait_until

POSTGRES_URL = os.environ.get(
    "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SERVER = DatabaseURL.parse(POSTGRES_URL)


@pytest.fixture(autouse=True)
def postgres_server() -> None:
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
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@asynccontextmanager
async def postgres_schema(
    count: int = 1, url: str = POSTGRES_URL, **options: object
) -> AsyncIterator[Sequence[db.Database]]:
    """``count`` databases working in a new schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
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


@pytest.mark.real_clock
class TestPostgres(DatabaseConformance):
    @asynccontextmanager
    async def databases(self, count: int) -> AsyncIterator[Sequence[db.Database]]:
        async with postgres_schema(count) as databases:
            yield databases


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (really) for the server to show ``check``; it acts on its own time."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def terminate(pid: int) -> None:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:
            found = await admin.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid)
            return found is None

        await eventually(gone, f"backend {pid} gone")
    finally:
        await admin.close()


@pytest.mark.real_clock
async def test_the_next_statement_after_a_terminated_backend_reconnects() -> None:
    async with postgres_schema(max_size=1) as [database]:
        await database.execute(KV)
        before = await database.fetch_val("SELECT pg_backend_pid()")
        await terminate(before)
        await asyncio.sleep(0)  # the loop reads the server's goodbye
        assert await database.fetch_val("SELECT 1") == 1
        assert await database.fetch_val("SELECT pg_backend_pid()") != before
        assert await database.fetch_val("SELECT count(*) FROM kv") == 0


@pytest.mark.real_clock
async def test_a_statement_whose_connection_dies_fails_and_the_next_one_works() -> None:
    async with postgres_schema(max_size=1) as [database]:
        pid = await database.fetch_val("SELECT pg_backend_pid()")
        sleeping = asyncio.create_task(
            database.fetch_val(db.Query("test.sleep", "SELECT pg_sleep(30)"))
        )

        async def asleep() -> bool:
            admin = await asyncpg.connect(POSTGRES_URL)
            try:
                state = await admin.fetchval(
                    "SELECT wait_event FROM pg_stat_activity WHERE pid = $1", pid
                )
            finally:
                await admin.close()
            return state == "PgSleep"

        await eventually(asleep, "the statement runs")
        await terminate(pid)
        with pytest.raises(db.ConnectionLost) as caught:
            await asyncio.wait_for(sleeping, WAIT_S)
        assert (caught.value.statement, caught.value.driver) == ("test.sleep", "postgresql")
        assert await database.fetch_val("SELECT 2") == 2


@pytest.mark.real_clock
async def test_listening_resumes_after_the_listen_connection_is_lost() -> None:
    channel = f"resume_{uuid.uuid4().hex[:8]}"
    async with postgres_schema() as [database], database.listen(channel) as subscription:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:

            async def listener_pids() -> list[int]:
                rows = await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE query = $1", f'LISTEN "{channel}"'
                )
                return [row["pid"] for row in rows]

            [pid] = await listener_pids()
            await terminate(pid)

            async def listening_again() -> bool:
                return bool(set(await listener_pids()) - {pid})

            await eventually(listening_again, "LISTEN again on a new connection")
        finally:
            await admin.close()
        await database.notify(channel, "after")
        assert await asyncio.wait_for(subscription.get(), WAIT_S) == (channel, "after")


@pytest.mark.real_clock
async def test_an_unreachable_server_is_named_with_the_cause() -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(db.CannotConnect) as caught:
        await db.connect(f"postgresql://postgres:hunter2@127.0.0.1:{port}/test")
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message
    assert isinstance(caught.value.cause, ConnectionRefusedError)


@pytest.mark.real_clock
async def test_a_refusal_is_not_retried() -> None:
    with pytest.raises(db.CannotConnect, match="no_such_database_here"):
        await db.connect(f"postgres://postgres@{SERVER.host}:{SERVER.port}/no_such_database_here")


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


@pytest.fixture
def clock() -> MockClock:
    # Backoff on virtual time; real replies from the server come well within the threshold.
    return MockClock(autojump_threshold_s=0.1)


async def test_reconnecting_backs_off_on_the_clock_until_the_server_is_back(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = Proxy()
    await proxy.start()
    url = through_port(proxy.port)
    async with postgres_schema(url=url, max_size=1, reconnect_timeout_s=60) as [database]:
        assert await database.fetch_val("SELECT 1") == 1
        await proxy.stop()
        await asyncio.sleep(0)
        caplog.set_level(logging.WARNING, logger="trunkline.db")
        started = clock.monotonic()
        query = asyncio.create_task(database.fetch_val("SELECT 2"))
        await wait_until(lambda: len(retry_pauses(caplog)) >= 3, timeout_s=60)
        pauses = retry_pauses(caplog)
        await proxy.start()
        assert await query == 2
        assert pauses[0] == 0.05
        assert pauses == sorted(pauses)
        assert clock.monotonic() - started >= sum(pauses) - 0.01  # logged rounded
    await proxy.stop()


def retry_pauses(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (re.search(r"retrying in ([0-9.]+)s", r.getMessage()) for r in caplog.records)
    return [float(match.group(1)) for match in found if match]


def through_port(port: int) -> str:
    """The test server's URL, but reaching it through ``127.0.0.1:port``."""
    parts = urlsplit(POSTGRES_URL)
    user, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(
        parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}")
    )


async def test_reconnecting_gives_up_after_the_reconnect_timeout(clock: MockClock) -> None:
    proxy = Proxy()
    await proxy.start()
    url = through_port(proxy.port)
    async with postgres_schema(url=url, max_size=1, reconnect_timeout_s=5) as [database]:
        await proxy.stop()
        await asyncio.sleep(0)
        started = clock.monotonic()
        with pytest.raises(db.CannotConnect, match=f"127.0.0.1:{proxy.port}"):
            await database.fetch_val("SELECT 1")
        assert 3 <= clock.monotonic() - started <= 5
