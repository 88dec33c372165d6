"""The pruner: ended jobs older than prune_after_s are deleted, in batches; nothing else is;
rows of long-gone nodes go too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from job_backends import Backend, running

from trunkline import db, jobs, otp
from trunkline.jobs import pruner
from trunkline.jobs.engine import engine_for

DAY_S = 86_400.0


async def _job(database: db.Database, state: str, column: str | None, age_s: float) -> int:
    job = await jobs.enqueue(database, "w", {})
    moment = otp.current_node().clock.now() - timedelta(seconds=age_s)
    sets = f", {column} = $3" if column else ", inserted_at = $3"
    await database.execute(
        f"UPDATE {jobs.TABLE} SET state = $2{sets} WHERE id = $1", job.id, state, moment
    )
    return job.id


async def _ids(database: db.Database) -> set[int]:
    return {row[0] for row in await database.fetch(f"SELECT id FROM {jobs.TABLE}")}


async def test_old_ended_jobs_are_deleted_and_nothing_else(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruner, "PRUNE_BATCH", 2)
    async with backend.database() as database:
        old = [
            await _job(database, "completed", "completed_at", 8 * DAY_S),
            await _job(database, "completed", "completed_at", 8 * DAY_S),
            await _job(database, "discarded", "discarded_at", 30 * DAY_S),
            await _job(database, "cancelled", "cancelled_at", 7 * DAY_S + 60),
            await _job(database, "cancelled", "cancelled_at", 9 * DAY_S),
        ]
        kept = [
            await _job(database, "completed", "completed_at", 6 * DAY_S),
            await _job(database, "discarded", "discarded_at", 60),
            await _job(database, "available", None, 30 * DAY_S),
            await _job(database, "scheduled", None, 30 * DAY_S),
            await _job(database, "retryable", None, 30 * DAY_S),
            await _job(database, "executing", "attempted_at", 30 * DAY_S),
        ]
        with otp.telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
            async with running(database, jobs.WorkerRegistry(), queues={}, prune_interval_s=60):
                await asyncio.sleep(30)
                assert await _ids(database) == set(old + kept)  # not before the interval
                await asyncio.sleep(40)
                assert await _ids(database) == set(kept)
        prunes = [s for s in statements if s.metadata["statement"] == "jobs.prune"]
        assert [s.measurements["rows"] for s in prunes[:3]] == [2, 2, 1]


async def test_prune_after_s_none_runs_no_pruner(backend: Backend) -> None:
    async with backend.database() as database:
        old = await _job(database, "completed", "completed_at", 365 * DAY_S)
        async with running(
            database, jobs.WorkerRegistry(), queues={}, prune_after_s=None, prune_interval_s=1
        ) as node:
            assert otp.resolve(otp.Via(node.names, "pruner")) is None
            await asyncio.sleep(5)
        assert await _ids(database) == {old}


async def test_rows_of_nodes_gone_for_a_day_without_executing_jobs_are_deleted(
    backend: Backend,
) -> None:
    async with backend.database() as database:
        engine = engine_for(database)
        now = otp.current_node().clock.now()
        long_ago = now - timedelta(seconds=2 * DAY_S)
        for node, at in (("gone", long_ago), ("gone-busy", long_ago), ("recent", now)):
            await engine.beat(database, node, at, at, "{}")
        await _job(database, "executing", "attempted_at", 2 * DAY_S)
        await database.execute(f"UPDATE {jobs.TABLE} SET attempted_by = 'gone-busy'")
        assert await engine.prune_nodes(database, now - timedelta(seconds=DAY_S)) == 1
        assert [row[0] for row in await engine.nodes(database)] == ["gone-busy", "recent"]


async def test_the_prune_reads_the_old_ended_jobs_only(backend: Backend) -> None:
    async with backend.database() as database:
        now = otp.current_node().clock.now()
        await jobs.enqueue_many(database, [jobs.new_job("w", {}) for _ in range(5000)])
        await database.execute(
            f"UPDATE {jobs.TABLE} SET state = 'completed', completed_at = $1 WHERE id <= 100",
            now,
        )
        await database.execute(f"ANALYZE {jobs.TABLE}")
        select = f"""SELECT id FROM {jobs.TABLE}
                     WHERE state IN ('completed', 'discarded', 'cancelled')
                           AND COALESCE(completed_at, discarded_at, cancelled_at) < $1
                     LIMIT 10000"""
        if backend.name == "postgresql":
            rows = await database.fetch(f"EXPLAIN {select} FOR UPDATE SKIP LOCKED", now)
            plan = "\n".join(row[0] for row in rows)
            assert "Seq Scan" not in plan, plan
        else:
            rows = await database.fetch(f"EXPLAIN QUERY PLAN {select}", now)
            plan = "\n".join(str(row[-1]) for row in rows)
            assert "SCAN" not in plan.replace("SCAN USING", ""), plan
        assert "trunkline_jobs_ended_at" in plan, plan
