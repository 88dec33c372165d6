"""Group commit on the SQLite writer: statements queued together share one transaction, and
each caller still gets what it would have got alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from db_conformance import KV, WAIT_S
from test_sqlite import sqlite_file

from trunkline import db
from trunkline.db.drivers import _sqlite_threads as work

INSERT = "INSERT INTO kv (id, v) VALUES ($1, $2)"

pytestmark = pytest.mark.real_clock


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group the writer ran as one transaction."""
    sizes: list[int] = []
    run_group = work._run_group

    def counting(connection: Any, group: list[Any], *rest: Any) -> None:
        sizes.append(len(group))
        run_group(connection, group, *rest)

    monkeypatch.setattr(work, "_run_group", counting)
    return sizes


async def queued_together(database: db.Database, *statements: Awaitable[Any]) -> list[Any]:
    """Run ``statements`` (each through ``database``) while a transaction holds the writer, so
    that they wait at its gate and reach the writer all at once when it commits."""
    async with database.transaction() as tx:
        tasks = [asyncio.ensure_future(statement) for statement in statements]
        await tx.fetch_val("SELECT 1")  # a round trip: every task has queued at the gate
        assert not any(task.done() for task in tasks)
    return list(await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S))


async def test_statements_queued_together_commit_as_one_and_each_gets_its_result(
    groups: list[int],
) -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        results = await queued_together(
            database,
            database.execute(INSERT, 1, "a"),
            database.fetch_one("INSERT INTO kv (id, v) VALUES ($1, $2) RETURNING id, v", 2, "b"),
            database.execute("UPDATE kv SET v = 'A' WHERE id = $1", 1),
            database.fetch_val("INSERT INTO kv (id, v) VALUES ($1, $2) RETURNING v", 3, "c"),
            database.execute("DELETE FROM kv WHERE id > 100"),
        )
        assert groups == [5]
        assert results[0] == 1
        assert tuple(results[1]) == (2, "b")
        assert results[2:] == [1, "c", 0]
        rows = await database.fetch("SELECT id, v FROM kv ORDER BY id")
        assert [tuple(row) for row in rows] == [(1, "A"), (2, "b"), (3, "c")]


async def test_a_failing_statement_fails_alone_and_the_rest_are_stored(
    groups: list[int],
) -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        await database.execute(INSERT, 1, "first")
        results = await queued_together(
            database,
            database.execute(INSERT, 2, "b"),
            database.execute(INSERT, 1, "taken"),
            database.execute_many(INSERT, [(3, "c"), (1, "taken too"), (4, "d")]),
            database.execute(INSERT, 5, "e"),
        )
        assert groups == [4]
        assert results[0] == 1
        assert isinstance(results[1], db.UniqueViolation)
        # execute_many is all or nothing, as it is alone: 3 is not stored either.
        assert isinstance(results[2], db.UniqueViolation)
        assert results[3] == 1
        ids = [row[0] for row in await database.fetch("SELECT id FROM kv ORDER BY id")]
        assert ids == [1, 2, 5]


async def test_a_statement_that_cannot_run_in_a_transaction_runs_alone(
    groups: list[int],
) -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        results = await queued_together(
            database,
            database.execute(INSERT, 1, "a"),
            database.execute("VACUUM"),
            database.execute(INSERT, 2, "b"),
        )
        assert groups == [3]
        assert results == [1, 0, 1]
        assert await database.fetch_val("SELECT count(*) FROM kv") == 2


async def test_a_transaction_is_never_grouped_with_what_came_before_it(
    groups: list[int],
) -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)

        async def in_a_transaction() -> str:
            async with database.transaction() as tx:
                await tx.execute(INSERT, 10, "tx")
                assert await tx.fetch_val("SELECT v FROM kv WHERE id = 10") == "tx"
                await tx.execute("DELETE FROM kv WHERE id = 10")
            return "done"

        results = await queued_together(
            database,
            database.execute(INSERT, 1, "a"),
            database.execute(INSERT, 2, "b"),
            in_a_transaction(),
            database.execute(INSERT, 3, "c"),
        )
        assert results == [1, 1, "done", 1]
        assert groups == [2]
        ids = [row[0] for row in await database.fetch("SELECT id FROM kv ORDER BY id")]
        assert ids == [1, 2, 3]


async def test_a_lone_statement_is_no_group(groups: list[int]) -> None:
    async with sqlite_file() as [database]:
        await database.execute(KV)
        for i in range(3):
            assert await database.execute(INSERT, i, "x") == 1
        assert groups == []
