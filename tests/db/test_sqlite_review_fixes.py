"""The SQLite driver when a task is cancelled mid-transaction, its timestamps beside SQLite's
own, and a row's missing column."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from db_conformance import WAIT_S

from trunkline import db

pytestmark = pytest.mark.real_clock

KV = "CREATE TABLE kv (id BIGINT PRIMARY KEY)"


@asynccontextmanager
async def sqlite_file(path: Path) -> AsyncIterator[db.Database]:
    # A long busy timeout: the writer waits in its thread for as long as a test holds the lock.
    async with db.connect(f"sqlite:///{path}?busy_timeout_s=60") as database:
        await database.execute(KV)
        yield database


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock, as another process would."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


def committed_ids(path: Path) -> list[int]:
    """What a connection of its own sees: only what was committed."""
    other = sqlite3.connect(path)
    try:
        return [id for (id,) in other.execute("SELECT id FROM kv ORDER BY id")]
    finally:
        other.close()


async def test_a_transaction_cancelled_waiting_for_begin_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "begin.db"
    async with sqlite_file(path) as database:
        with write_lock(path):
            # The writer thread waits for the lock on this write; the BEGIN queues behind it.
            blocked = asyncio.create_task(database.execute("INSERT INTO kv (id) VALUES (1)"))
            await asyncio.sleep(0)

            async def transaction() -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO kv (id) VALUES (99)")

            task = asyncio.create_task(transaction())
            for _ in range(3):
                await asyncio.sleep(0)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # The lock is gone: the write, then the cancelled BEGIN, run on the writer thread.
        assert await asyncio.wait_for(blocked, WAIT_S) == 1
        # An autocommit write after them is committed: no transaction was left open for it.
        await asyncio.wait_for(database.execute("INSERT INTO kv (id) VALUES (2)"), WAIT_S)
        assert committed_ids(path) == [1, 2]
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO kv (id) VALUES (3)")
        assert committed_ids(path) == [1, 2, 3]


async def test_a_failed_begin_lets_the_next_transaction_in(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with db.connect(f"sqlite:///{path}?busy_timeout_s=0.01") as database:
        await database.execute(KV)
        with write_lock(path), pytest.raises(db.QueryError):
            async with database.transaction():
                pass
        # The BEGIN never ran: the rollback queued after it is a no-op, the writer clean.
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO kv (id) VALUES (1)")
        assert committed_ids(path) == [1]


async def test_notifications_of_a_transaction_committed_after_its_task_was_cancelled_are_sent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "commit.db"
    async with sqlite_file(path) as database, database.listen("kv") as subscription:
        block_ended = asyncio.Event()

        async def transaction() -> None:
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO kv (id) VALUES (1)")
                await tx.notify("kv", "1")
                block_ended.set()  # the COMMIT is queued before this task waits again

        task = asyncio.create_task(transaction())
        await block_ended.wait()
        task.cancel()  # while it waits for the COMMIT, which the writer runs all the same
        with pytest.raises(asyncio.CancelledError):
            await task
        # A write queued after the COMMIT: when it is done, so is the COMMIT.
        await asyncio.wait_for(database.execute("INSERT INTO kv (id) VALUES (2)"), WAIT_S)
        await database.notify("kv", "after")
        assert committed_ids(path) == [1, 2]
        assert await asyncio.wait_for(subscription.get(), WAIT_S) == ("kv", "1")
        assert await asyncio.wait_for(subscription.get(), WAIT_S) == ("kv", "after")


async def test_notifications_of_a_failed_commit_are_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "deferred.db"
    async with sqlite_file(path) as database, database.listen("kv") as subscription:
        await database.execute(
            "CREATE TABLE child (id BIGINT REFERENCES kv (id) DEFERRABLE INITIALLY DEFERRED)"
        )

        async def transaction() -> None:
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO child (id) VALUES (1)")  # checked at COMMIT
                await tx.notify("kv", "lost")

        with pytest.raises(db.IntegrityError):
            await transaction()
        await database.notify("kv", "after")
        assert await asyncio.wait_for(subscription.get(), WAIT_S) == ("kv", "after")
        async with database.transaction() as tx:  # the writer is free and clean
            await tx.execute("INSERT INTO kv (id) VALUES (1)")
        assert committed_ids(path) == [1]


async def test_datetime_parameters_compare_with_sqlites_own_timestamps(tmp_path: Path) -> None:
    async with sqlite_file(tmp_path / "time.db") as database:
        await database.execute(
            "CREATE TABLE events (id BIGINT PRIMARY KEY,"
            " at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        await database.execute("INSERT INTO events (id) VALUES (1)")
        at = await database.fetch_val("SELECT at FROM events WHERE id = 1")
        assert at.utcoffset() == timedelta(0)  # aware, in UTC
        now = datetime.now(UTC)
        assert now - timedelta(minutes=1) < at <= now
        count = "SELECT count(*) FROM events WHERE at {} $1"
        assert await database.fetch_val(count.format(">"), at - timedelta(microseconds=1)) == 1
        assert await database.fetch_val(count.format("<"), at + timedelta(microseconds=1)) == 1
        # A whole second is stored as the very text CURRENT_TIMESTAMP writes.
        assert await database.fetch_val(count.format("="), at) == 1
        assert await database.fetch_val(count.format(">="), at) == 1
        late = now + timedelta(hours=1)
        assert await database.fetch_val("SELECT $1 > datetime('now')", late) == 1
        assert await database.fetch_val("SELECT $1 < CURRENT_TIMESTAMP", late) == 0


async def test_datetimes_are_stored_in_sqlites_format_in_utc(tmp_path: Path) -> None:
    async with sqlite_file(tmp_path / "format.db") as database:
        await database.execute("CREATE TABLE events (id BIGINT PRIMARY KEY, at TIMESTAMPTZ)")
        eastern = timezone(timedelta(hours=-5))
        cases = [
            (datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC), "2026-03-04 05:06:07.890123"),
            (datetime(2026, 3, 4, 0, 6, 7, tzinfo=eastern), "2026-03-04 05:06:07"),
            (datetime(2026, 3, 4, 5, 6, 7, 1), "2026-03-04 05:06:07.000001"),  # naive: UTC
        ]
        for id, (value, _) in enumerate(cases):
            await database.execute("INSERT INTO events (id, at) VALUES ($1, $2)", id, value)
        rows = await database.fetch("SELECT at, at || '' AS text FROM events ORDER BY id")
        for row, (value, text) in zip(rows, cases, strict=True):
            assert row.text == text
            assert row.at == (value if value.tzinfo else value.replace(tzinfo=UTC))
            assert row.at.tzinfo is not None


async def test_timestamps_in_the_earlier_iso_format_still_read_back(tmp_path: Path) -> None:
    async with sqlite_file(tmp_path / "earlier.db") as database:
        await database.execute("CREATE TABLE events (id BIGINT PRIMARY KEY, at TIMESTAMPTZ)")
        await database.execute(
            "INSERT INTO events (id, at) VALUES (1, '2026-03-04T05:06:07.000001+00:00'),"
            " (2, '2026-03-04 05:06:07')"
        )
        assert await database.fetch("SELECT at FROM events ORDER BY id") == [
            (datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC),),
            (datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),),
        ]


async def test_a_missing_column_is_a_lookup_error_and_get_gives_the_default() -> None:
    async with db.connect("sqlite:///:memory:") as database:
        row = await database.fetch_one("SELECT 1 AS id")
        assert row is not None
        with pytest.raises(LookupError):
            row["missing"]
        with pytest.raises(AttributeError, match="missing"):
            row.missing  # noqa: B018
        assert row.get("missing", 7) == 7
        assert row["id"] == row.id == row.get("id") == 1
