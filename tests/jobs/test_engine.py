"""The engines' SQL on both databases: fetching in queue order without handing a job out
twice, writing outcomes only over executions still running, staging, putting back; and the
fetch staying on its index as the table grows."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from job_backends import Backend

from trunkline import db, jobs
from trunkline.jobs.engine import EPOCH, engine_for
from trunkline.otp import MockClock

NODE = "node-a"


async def fetch(database: db.Database, queue: str, limit: int, node: str = NODE) -> list[jobs.Job]:
    from trunkline.otp import current_node

    rows = await engine_for(database).fetch(
        database, queue, limit, node, current_node().clock.now()
    )
    return [jobs.Job.from_row(row) for row in rows]


async def test_fetch_takes_the_head_of_the_queue_by_priority_then_time_then_id(
    backend: Backend, clock: MockClock
) -> None:
    async with backend.database() as database:
        now = clock.now()
        specs = [  # (name, priority, seconds ago)
            ("late-urgent", 0, 1),
            ("old-normal", 5, 100),
            ("old-urgent", 0, 50),
            ("tie-a", 5, 10),
            ("tie-b", 5, 10),
            ("other-queue", 0, 1000),
        ]
        for name, priority, ago in specs:
            queue = "other" if name == "other-queue" else "work"
            at = now - timedelta(seconds=ago)
            await jobs.enqueue(
                database, "w", {"name": name}, queue=queue, priority=priority, scheduled_at=at
            )
        await jobs.enqueue(database, "w", {"name": "later"}, queue="work", in_s=10)
        first = await fetch(database, "work", 3)
        rest = await fetch(database, "work", 10)
        names = [job.args["name"] for job in first + rest]
        assert names == ["old-urgent", "late-urgent", "old-normal", "tie-a", "tie-b"]
        assert await fetch(database, "work", 10) == []
        for job in first + rest:
            assert (job.state, job.attempt, job.attempted_by, job.attempted_at) == (
                "executing",
                1,
                NODE,
                clock.now(),
            )


async def test_concurrent_fetches_never_hand_out_a_job_twice(backend: Backend) -> None:
    async with backend.databases(3) as databases:
        await jobs.enqueue_many(databases[0], [jobs.new_job("w", {"n": n}) for n in range(300)])

        async def drain(database: db.Database, node: str) -> list[int]:
            taken: list[int] = []
            while batch := await fetch(database, "default", 7, node):
                taken.extend(job.id for job in batch)
            return taken

        taken = await asyncio.gather(*(drain(d, f"node-{i}") for i, d in enumerate(databases)))
        everything = [job_id for ids in taken for job_id in ids]
        assert len(everything) == len(set(everything)) == 300


async def test_outcomes_change_only_executions_still_running(
    backend: Backend, clock: MockClock
) -> None:
    async with backend.database() as database:
        engine = engine_for(database)
        stored = await jobs.enqueue_many(database, [jobs.new_job("w", {"n": n}) for n in range(6)])
        ids = [job.id for job in await fetch(database, "default", 6)]
        await jobs.cancel_job(database, ids[0])  # cancelled meanwhile: outcomes must not undo it
        now = clock.now()
        later = now + timedelta(seconds=30)
        error = json.dumps({"type": "E", "message": "m"})
        # Another node's word on these executions changes nothing (a node taken for lost).
        await engine.complete(database, ids, now, "elsewhere")
        await engine.retry(database, ids, [later] * 6, [error] * 6, "elsewhere")
        await engine.discard(database, ids, [error] * 6, now, "elsewhere")
        await engine.cancel(database, ids, [error] * 6, now, "elsewhere")
        await engine.snooze(database, ids, [later] * 6, "elsewhere")
        assert {(await jobs.get_job(database, i)).state for i in ids[1:]} == {"executing"}  # type: ignore[union-attr]
        await engine.complete(database, [ids[0], ids[1]], now, NODE)
        await engine.retry(database, [ids[2]], [later], [error], NODE)
        await engine.discard(database, [ids[3]], [error], now, NODE)
        await engine.cancel(database, [ids[4]], [error], now, NODE)
        await engine.snooze(database, [ids[5]], [later], NODE)
        states = [
            (job.state, job.attempt) for job in [await jobs.get_job(database, i) for i in ids]
        ]
        assert states == [
            ("cancelled", 1),
            ("completed", 1),
            ("retryable", 1),
            ("discarded", 1),
            ("cancelled", 1),
            ("scheduled", 0),  # a snooze gives its attempt back
        ]
        retried = await jobs.get_job(database, ids[2])
        assert retried is not None
        assert (retried.scheduled_at, retried.errors) == (later, [{"type": "E", "message": "m"}])
        # Written twice (after a failure, say): nothing more changes.
        await engine.retry(database, [ids[2]], [later], [error], NODE)
        assert await jobs.get_job(database, ids[2]) == retried
        assert len(stored) == 6


async def test_put_back_returns_a_nodes_executing_jobs_of_a_queue(backend: Backend) -> None:
    async with backend.database() as database:
        engine = engine_for(database)
        await jobs.enqueue_many(database, [jobs.new_job("w", {}, queue=q) for q in ["a", "a", "b"]])
        mine = await fetch(database, "a", 1, "mine")
        theirs = await fetch(database, "a", 1, "theirs")
        other_queue = await fetch(database, "b", 1, "mine")
        async with database.listen(jobs.INSERT_CHANNEL) as heard:
            assert await engine.put_back(database, "a", "mine") == 1
            assert (await asyncio.wait_for(heard.get(), 5)).payload == "a"
        back = await jobs.get_job(database, mine[0].id)
        assert back is not None
        assert (back.state, back.attempt) == ("available", 0)
        for job in theirs + other_queue:
            assert (await jobs.get_job(database, job.id)).state == "executing"  # type: ignore[union-attr]


async def test_stage_makes_due_jobs_available_and_notifies_their_queues(
    backend: Backend, clock: MockClock
) -> None:
    async with backend.database() as database:
        engine = engine_for(database)
        soon = await jobs.enqueue(database, "w", {}, queue="a", in_s=10)
        await jobs.enqueue(database, "w", {}, queue="b", in_s=20)
        await jobs.enqueue(database, "w", {}, queue="b", in_s=20)
        assert await engine.next_due(database) == soon.scheduled_at
        assert await engine.stage(database, clock.now(), 100) == {}
        clock.jump(15)
        async with database.listen(jobs.INSERT_CHANNEL) as heard:
            assert await engine.stage(database, clock.now(), 100) == {"a": 1}
            assert (await asyncio.wait_for(heard.get(), 5)).payload == "a"
            clock.jump(10)
            assert await engine.stage(database, clock.now(), 1) == {"b": 1}  # in batches
            assert await engine.stage(database, clock.now(), 1) == {"b": 1}
        assert await engine.next_due(database) is None


async def test_the_fetch_reads_its_partial_index_however_many_jobs_have_ended(
    backend: Backend,
) -> None:
    async with backend.database() as database:
        engine = engine_for(database)
        ended = [jobs.new_job("w", {"n": n}) for n in range(5000)]
        for start in range(0, len(ended), 1000):
            await jobs.enqueue_many(database, ended[start : start + 1000])
            ids = [job.id for job in await fetch(database, "default", 1000)]
            await engine.complete(database, ids, EPOCH, NODE)
        await jobs.enqueue_many(database, [jobs.new_job("w", {}) for _ in range(5)])
        await database.execute(f"ANALYZE {jobs.TABLE}")
        if backend.name == "postgresql":
            plan = await database.fetch(
                "EXPLAIN SELECT id FROM trunkline_jobs WHERE state = 'available' AND queue = $1 "
                "ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED",
                "default",
            )
            text = "\n".join(row[0] for row in plan)
        else:
            plan = await database.fetch(
                "EXPLAIN QUERY PLAN SELECT id FROM trunkline_jobs WHERE state = 'available' "
                "AND queue = $1 ORDER BY priority, scheduled_at, id LIMIT 10",
                "default",
            )
            text = "\n".join(str(row[-1]) for row in plan)
        assert "trunkline_jobs_fetch" in text, text
        assert "Seq Scan" not in text, text
        assert len(await fetch(database, "default", 10)) == 5


async def test_batched_timestamps_are_written_as_parameters_are(backend: Backend) -> None:
    # On SQLite a batch carries its timestamps inside JSON, formatted by the engine: they must
    # compare with (and equal) what the driver writes from a parameter.
    async with backend.database() as database:
        for at in (EPOCH + timedelta(days=20000), EPOCH + timedelta(days=20000, microseconds=7)):
            one = await jobs.enqueue(database, "w", {}, queue=f"q{at.microsecond}", scheduled_at=at)
            many = await jobs.enqueue_many(
                database, [jobs.new_job("w", {}, queue=one.queue, scheduled_at=at)] * 2
            )
            assert [job.scheduled_at for job in many] == [at, at]
            assert (
                await database.fetch_val(
                    f"SELECT count(DISTINCT scheduled_at) FROM {jobs.TABLE} WHERE queue = $1",
                    one.queue,
                )
                == 1
            )
            assert (
                await database.fetch_val(
                    f"SELECT count(*) FROM {jobs.TABLE} WHERE queue = $1 AND scheduled_at <= $2",
                    one.queue,
                    at,
                )
                == 3
            )
