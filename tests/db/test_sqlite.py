"""The SQLite driver: the shared conformance suite on a file, and what is SQLite's own: one
writer at a time, readers beside it, nothing blocking the event loop, ``:memory:``."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from db_conformance import KV, WAIT_S, DatabaseConformance

from trunkline import db
from trunkline.db.drivers._sqlite_threads import split_script
from trunkline.db.query import Statement
from trunkline.otp import MockClock


@asynccontextmanager
async def sqlite_file(count: int = 1, options: str = "") -> AsyncIterator[Sequence[db.Database]]:
    with tempfile.TemporaryDirectory(prefix="trunkline-db-") as directory:
        url = f"sqlite:///{Path(directory) / 'test.db'}{options}"
        databases = [await db.connect(url) for _ in range(count)]
        try:
            yield databases
        finally:
            for database in databases:
                await database.close()


@pytest.mark.real_clock
class TestSQLiteFile(DatabaseConformance):
    @asynccontextmanager
    async def databases(self, count: int) -> AsyncIterator[Sequence[db.Database]]:
        async with sqlite_file(count) as databases:
            yield databases


@pytest.fixture
def clock() -> MockClock:
    # Virtual time for the heartbeat, but never faster than the threads' real replies.
    return MockClock(autojump_threshold_s=0.002)


async def test_readers_and_the_loop_carry_on_while_the_writer_waits(
    clock: MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "busy.db"
    async with db.connect(f"sqlite:///{path}?busy_timeout_s=60") as database:
        await database.execute(KV)
        await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, "committed")
        # Another process takes SQLite's write lock: our writer will wait in its thread.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:

            async def write() -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 2, "later")

            writer = asyncio.create_task(write())
            beats = 0
            before = clock.monotonic()
            for _ in range(5):  # the heartbeat: timers fire while the writer is stuck
                await asyncio.sleep(1.0)
                beats += 1
            assert beats == 5
            assert clock.monotonic() - before == 5.0
            rows = await database.fetch("SELECT v FROM kv ORDER BY id")
            assert [row.v for row in rows] == ["committed"]
            assert not writer.done()
        finally:
            other.execute("COMMIT")
            other.close()
        await writer  # real time now: SQLite's busy handler notices the lock is free
        assert await database.fetch_val("SELECT count(*) FROM kv") == 2


@pytest.mark.real_clock
async def test_writes_wait_for_the_transaction_that_holds_the_writer() -> None:
    insert = "INSERT INTO kv (id, v) VALUES ($1, $2)"
    async with sqlite_file() as [database]:
        await database.execute(KV)
        order = []
        async with database.transaction() as tx:
            await tx.execute(insert, 1, "tx")

            async def write_elsewhere() -> None:
                await database.execute(insert, 2, "outside")
                order.append("outside")

            outside = asyncio.create_task(write_elsewhere())
            await tx.fetch_val("SELECT 1")  # a round trip on the writer: outside had its turn
            await asyncio.sleep(0)
            assert not outside.done()
            order.append("commit")
        await asyncio.wait_for(outside, WAIT_S)
        assert order == ["commit", "outside"]
        assert await database.fetch_val("SELECT count(*) FROM kv") == 2


@pytest.mark.real_clock
async def test_a_write_through_the_database_inside_its_own_transaction_is_refused() -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        async with database.transaction() as tx:
            with pytest.raises(db.TransactionError, match="through the transaction"):
                await database.execute("INSERT INTO kv (id, v) VALUES (1, 'x')")
            with pytest.raises(db.TransactionError, match="savepoint"):
                async with database.transaction():
                    pass
            await tx.execute("INSERT INTO kv (id, v) VALUES (2, 'y')")
        assert await database.fetch_val("SELECT id FROM kv") == 2


@pytest.mark.real_clock
async def test_a_statement_guessed_read_only_that_writes_goes_to_the_writer() -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        write = "WITH src(id, v) AS (VALUES (1, 'a')) INSERT INTO kv SELECT id, v FROM src"
        assert await database.execute(write) == 1
        # The guess reads the first keyword; should it ever be wrong, the read-only reader
        # refuses the write and the writer runs it.
        misjudged = Statement("misjudged", "INSERT INTO kv (id, v) VALUES (2, 'b')", True)
        assert misjudged.readonly
        assert await database._driver.execute(misjudged, ()) == 1
        assert await database.fetch_val("SELECT count(*) FROM kv") == 2


@pytest.mark.real_clock
async def test_many_concurrent_reads_are_all_served() -> None:
    async with sqlite_file(options="?readers=2") as [database]:
        await database.execute(KV)
        await database.execute_many(
            "INSERT INTO kv (id, v) VALUES ($1, $2)", [(i, str(i)) for i in range(50)]
        )
        values = await asyncio.gather(
            *(database.fetch_val("SELECT v FROM kv WHERE id = $1", i) for i in range(50))
        )
        assert values == [str(i) for i in range(50)]


@pytest.mark.real_clock
async def test_memory_database_has_one_connection_and_works_alike() -> None:
    async with db.connect("sqlite:///:memory:") as database:
        await database.execute(KV)
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, "a")
            # No readers: a read from elsewhere waits for the transaction, then sees it.
            elsewhere = asyncio.create_task(database.fetch_val("SELECT count(*) FROM kv"))
            await tx.fetch_val("SELECT 1")
            assert not elsewhere.done()
        assert await asyncio.wait_for(elsewhere, WAIT_S) == 1
        async with db.connect("sqlite:///:memory:") as other:
            with pytest.raises(db.QueryError, match="no such table"):
                await other.fetch("SELECT * FROM kv")


@pytest.mark.real_clock
@pytest.mark.parametrize(("options", "expected"), [("", 2), ("?temp_store=file", 1)])
async def test_temporary_b_trees_go_where_the_url_says_on_every_connection(
    options: str, expected: int
) -> None:
    # SQLite's numbers: 1 is FILE, 2 is MEMORY.
    async with sqlite_file(options=options) as [database]:
        async with database.transaction() as tx:  # the writer
            assert await tx.fetch_val("PRAGMA temp_store") == expected
        readers = await asyncio.gather(
            *(database.fetch_val("SELECT temp_store FROM pragma_temp_store") for _ in range(8))
        )
        assert readers == [expected] * 8


@pytest.mark.real_clock
async def test_a_file_that_cannot_be_opened_is_named() -> None:
    with tempfile.TemporaryDirectory() as directory:
        missing = Path(directory) / "no" / "such" / "dir.db"
        with pytest.raises(db.CannotConnect) as caught:
            await db.connect(f"sqlite:///{missing}")
        assert str(missing) in str(caught.value)
        assert isinstance(caught.value.cause, sqlite3.Error)


@pytest.mark.real_clock
async def test_a_cancelled_statement_does_not_disturb_the_next() -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        slow = asyncio.create_task(
            database.fetch_val(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
                " SELECT count(*) FROM n"
            )
        )
        await asyncio.sleep(0)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await database.fetch_val("SELECT 41 + 1") == 42


def test_scripts_split_where_sqlite_ends_a_statement() -> None:
    script = """
        CREATE TABLE a (id INTEGER, note TEXT DEFAULT 'x; y');  -- a comment; with a semicolon
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET note = 'z;' WHERE id = new.id;
        END;
        ;
        INSERT INTO a (id) VALUES (1)
    """
    statements = list(split_script(script))
    assert len(statements) == 3
    assert statements[0].startswith("CREATE TABLE a")
    assert statements[1].startswith("-- a comment")
    assert statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO a (id) VALUES (1)"
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    assert connection.execute("SELECT note FROM a").fetchone() == ("z;",)
