"""The query methods' span: each method names itself and counts its rows, whichever of the
span's events are listened to, and a statement that fails still fails its transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import pytest

from trunkline import db
from trunkline.otp import telemetry

START, STOP, EXCEPTION = ((*db.QUERY_EVENT, kind) for kind in ("start", "stop", "exception"))
INSERT = "INSERT INTO kv (id, v) VALUES ($1, $2)"

pytestmark = pytest.mark.real_clock


@asynccontextmanager
async def kv_database() -> AsyncIterator[db.Database]:
    async with db.connect("sqlite:///:memory:") as database:
        await database.execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        yield database


async def test_every_method_names_itself_and_counts_its_rows() -> None:
    async with kv_database() as database:
        with telemetry.capture([STOP]) as seen:
            await database.execute_many(INSERT, [(1, "a"), (2, "b"), (3, "c")])
            await database.execute("UPDATE kv SET v = $1 WHERE id > $2", "z", 1)
            await database.fetch("SELECT id FROM kv")
            await database.fetch_one("SELECT id FROM kv WHERE id = $1", 1)
            await database.fetch_one("SELECT id FROM kv WHERE id = $1", 9)
            await database.fetch_val("SELECT count(*) FROM kv")
    assert [(e.metadata["method"], e.measurements["rows"]) for e in seen] == [
        ("execute_many", 3),
        ("execute", 2),
        ("fetch", 3),
        ("fetch_one", 1),
        ("fetch_one", 0),
        ("fetch_val", 1),
    ]
    assert {e.metadata["statement"] for e in seen} >= {"insert kv", "update kv", "select kv"}


async def test_a_handler_on_the_exception_event_alone_sees_only_failures() -> None:
    async with kv_database() as database:
        with telemetry.capture([EXCEPTION]) as seen:
            await database.execute(INSERT, 1, "a")
            with pytest.raises(db.UniqueViolation):
                await database.execute(INSERT, 1, "again")
    [failure] = seen
    assert failure.metadata["method"] == "execute"
    assert isinstance(failure.metadata["reason"], db.UniqueViolation)
    assert failure.measurements["duration"] >= 0


@pytest.mark.parametrize("listened", [False, True], ids=["unlistened", "listened"])
async def test_a_failed_statement_fails_its_transaction_whether_listened_to_or_not(
    listened: bool,
) -> None:
    async with kv_database() as database:
        await database.execute(INSERT, 1, "a")

        async def swallow_a_failure() -> None:
            async with database.transaction() as tx:
                await tx.execute(INSERT, 2, "b")
                with pytest.raises(db.UniqueViolation):
                    await tx.execute(INSERT, 1, "again")
                with pytest.raises(db.TransactionAborted):
                    await tx.fetch_val("SELECT count(*) FROM kv")

        listening = telemetry.capture([START, STOP, EXCEPTION]) if listened else nullcontext()
        with listening, pytest.raises(db.TransactionAborted) as aborted:
            await swallow_a_failure()
        assert isinstance(aborted.value.__cause__, db.UniqueViolation)
        assert await database.fetch_val("SELECT count(*) FROM kv") == 1
