"""The PostgreSQL driver: the shared conformance suite against the real server, and what is
PostgreSQL's own: lost connections and reconnecting, the LISTEN connection coming back, an
unreachable server.

The server, and how a test gets a schema of its own on it, are in ``tests/pg.py``: when it
cannot be reached these tests are skipped, naming it, except under ``CI=true``, where they
fail.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import pytest
from db_conformance import KV, WAIT_S, DatabaseConformance

from pg import (
    POSTGRES_URL,
    SERVER,
    Proxy,
    eventually,
    postgres_schema,
    require_postgres,
    terminate,
    through_port,
)
from trunkline import db
from trunkline.db.query import Statement
from trunkline.otp import MockClock
from trunkline.otp.testing import wait_until


@pytest.fixture(autouse=True)
def postgres_server() -> None:
    require_postgres()


@pytest.mark.real_clock
class TestPostgres(DatabaseConformance):
    @asynccontextmanager
    async def databases(self, count: int) -> AsyncIterator[Sequence[db.Database]]:
        async with postgres_schema(count) as databases:
            yield databases


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


# -- interrupted transactions, timeouts, connections dead without a word ------------------


@pytest.mark.real_clock
async def test_a_cancelled_begin_never_hands_a_connection_on_inside_a_transaction() -> None:
    async with postgres_schema(max_size=1) as [database]:
        await database.execute(KV)
        schema = await database.fetch_val("SELECT current_schema()")
        other = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            for attempt in range(20):
                task = asyncio.create_task(database.transaction().__aenter__())
                for _ in range(attempt % 4):  # cancelled before, or while BEGIN is on its way
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    tx = await task
                except asyncio.CancelledError:
                    pass
                else:
                    await tx.__aexit__(None, None, None)
                # The next statement, on the same connection, commits on its own.
                await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", attempt, "a")
                assert await other.fetchval("SELECT count(*) FROM kv") == attempt + 1
        finally:
            await other.close()


@pytest.mark.real_clock
async def test_a_cancelled_commit_leaves_no_connection_in_a_transaction() -> None:
    application = f"cancel_{uuid.uuid4().hex[:8]}"
    async with postgres_schema(max_size=2, application_name=application) as [database]:
        await database.execute(KV)
        for i in range(10):
            leaving = asyncio.Event()

            async def write(i: int, leaving: asyncio.Event) -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", i, "tx")
                    leaving.set()  # the COMMIT is next

            task = asyncio.create_task(write(i, leaving))
            await leaving.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await database.execute("INSERT INTO kv (id, v) VALUES (100, 'a')") == 1
        admin = await asyncpg.connect(POSTGRES_URL)
        try:

            async def none_left_in_a_transaction() -> bool:
                left = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
                    application,
                )
                return bool(left == 0)

            await eventually(none_left_in_a_transaction, "no connection idle in a transaction")
        finally:
            await admin.close()


@pytest.mark.real_clock
async def test_a_statement_unanswered_within_the_command_timeout_drops_its_connection() -> None:
    async with postgres_schema(max_size=1, command_timeout_s=0.2) as [database]:
        before = await database.fetch_val("SELECT pg_backend_pid()")
        with pytest.raises(db.ConnectionLost, match="no answer within command_timeout_s") as caught:
            await database.fetch_val(db.Query("test.sleep", "SELECT pg_sleep(30)"))
        assert caught.value.statement == "test.sleep"
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert await database.fetch_val("SELECT pg_backend_pid()") != before
        with pytest.raises(db.ConnectionLost):
            async with database.transaction() as tx:
                await tx.fetch_val("SELECT pg_sleep(30)")
        assert await database.fetch_val("SELECT 1") == 1


@pytest.mark.real_clock
async def test_migration_scripts_are_not_held_to_the_command_timeout() -> None:
    # The script as migrate runs it, without migrate's lock: that one is the whole server's,
    # and other test runs' migrations may hold it for longer than this timeout.
    script = Statement(
        "migration test v1", "SELECT pg_sleep(0.5); CREATE TABLE built (id BIGINT)", False
    )
    async with postgres_schema(command_timeout_s=0.1) as [database]:
        async with database.transaction() as tx:
            await tx._run_script(script)
        assert await database.fetch_val("SELECT count(*) FROM built") == 0


@pytest.mark.real_clock
async def test_a_password_in_the_query_string_is_masked_in_the_databases_repr() -> None:
    async with postgres_schema(password="hunter2") as [database]:
        assert "hunter2" not in repr(database)
        assert "password=***" in repr(database)


@pytest.mark.real_clock
async def test_a_select_through_execute_changes_no_rows() -> None:
    async with postgres_schema() as [database]:
        assert await database.execute("SELECT * FROM generate_series(1, 5)") == 0
        assert (
            await database.execute("CREATE TABLE t AS SELECT * FROM generate_series(1, 5) AS n")
            == 0
        )
        assert (
            await database.execute(
                "MERGE INTO t USING (SELECT 1 AS n) s ON t.n = s.n WHEN MATCHED THEN DELETE"
            )
            == 1
        )


class SilencingProxy(Proxy):
    """A proxy that can make the links open through it go silent: bytes still go in, nothing
    comes out, and nobody hangs up, as when a NAT table or a failover forgets a connection."""

    def __init__(self) -> None:
        super().__init__()
        self._writers: set[asyncio.StreamWriter] = set()
        self._silenced: set[asyncio.StreamWriter] = set()

    def silence(self) -> None:
        """Silence every link open now; new links work."""
        self._silenced |= self._writers

    async def _pipe(  # type: ignore[override]
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        while data := await reader.read(65536):
            if writer not in self._silenced:
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_pool_connection_gone_silent_is_dropped_after_the_command_timeout(
    clock: MockClock,
) -> None:
    proxy = SilencingProxy()
    await proxy.start()
    url = through_port(proxy.port)
    try:
        async with postgres_schema(url=url, max_size=1, command_timeout_s=30) as [database]:
            assert await database.fetch_val("SELECT 1") == 1
            proxy.silence()
            started = clock.monotonic()
            with pytest.raises(db.ConnectionLost):
                await database.fetch_val("SELECT 2")
            assert clock.monotonic() - started == pytest.approx(30, abs=0.5)
            assert await database.fetch_val("SELECT 3") == 3  # on a new connection
    finally:
        await proxy.stop()


async def test_a_listen_connection_gone_silent_is_replaced_and_listens_again(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    channel = f"silent_{uuid.uuid4().hex[:8]}"
    proxy = SilencingProxy()
    await proxy.start()
    url = through_port(proxy.port)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        async with (
            postgres_schema(url=url, health_check_interval_s=5) as [database],
            database.listen(channel) as subscription,
        ):
            proxy.silence()
            await admin.execute("SELECT pg_notify($1, $2)", channel, "lost")
            await asyncio.sleep(2 * 5 + 1)  # the next check, and its time to answer
            assert "looks dead (no answer to SELECT 1 within 5s)" in caplog.text

            first: list[db.Notification] = []

            async def delivered() -> bool:
                await admin.execute("SELECT pg_notify($1, $2)", channel, "after")
                try:
                    first.append(await asyncio.wait_for(subscription.get(), 0.05))
                except TimeoutError:
                    return False
                return True

            await eventually(delivered, "notifications delivered again")
            assert first == [(channel, "after")]  # and not "lost": that went to the dead one
    finally:
        await admin.close()
        await proxy.stop()
