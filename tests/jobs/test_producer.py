"""A queue's producer, running: at most ``limit`` jobs at once, pause, resume, scale, woken by
inserts (or found by its poll), outcomes written in batches, a database outage survived
without restarts, malformed rows quarantined."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from job_backends import (
    Backend,
    Concurrency,
    Recorder,
    eventually,
    process_of,
    running,
    wait_for_state,
)

from trunkline import jobs, otp
from trunkline.jobs.engine import engine_for
from trunkline.otp import MockClock, telemetry


def sleeper(registry: jobs.WorkerRegistry, counter: Concurrency, seconds: float) -> jobs.Worker:
    @registry.worker(name="sleep")
    async def sleep(job: jobs.Job) -> None:
        with counter:
            await asyncio.sleep(seconds)

    return sleep


async def test_a_queue_never_runs_more_than_its_limit(backend: Backend) -> None:
    registry, counter = jobs.WorkerRegistry(), Concurrency()
    worker = sleeper(registry, counter, 1.0)
    async with backend.database() as database, running(database, registry, queues={"default": 4}):
        with Recorder() as recorder:
            await jobs.enqueue_many(database, [worker.new({"n": n}) for n in range(30)])
            await recorder.wait(30)
        assert counter.most == 4
        assert counter.done == 30


async def test_jobs_run_by_priority_then_time(backend: Backend, clock: MockClock) -> None:
    registry = jobs.WorkerRegistry()
    order: list[str] = []

    @registry.worker
    async def note(job: jobs.Job) -> None:
        order.append(job.args["name"])

    async with (
        backend.database() as database,
        running(database, registry, queues={"default": 1}) as node,
    ):
        await node.pause("default")
        for name, priority, ago in [("b", 5, 10), ("c", 5, 5), ("a", 0, 1), ("d", 9, 60)]:
            at = clock.now() - timedelta(seconds=ago)
            await jobs.enqueue(database, note, {"name": name}, priority=priority, scheduled_at=at)
        with Recorder() as recorder:
            await node.resume("default")
            await recorder.wait(4)
        assert order == ["a", "b", "c", "d"]


async def test_pause_stops_fetching_and_resume_starts_again(backend: Backend) -> None:
    registry, counter = jobs.WorkerRegistry(), Concurrency()
    worker = sleeper(registry, counter, 1.0)
    async with backend.database() as database, running(database, registry) as node:
        await node.pause("default")
        info = await node.queue_info("default")
        assert (info.paused, info.running, info.limit, info.node) == (True, 0, 10, "test-node")
        job = await jobs.enqueue(database, worker, {})
        await asyncio.sleep(30)
        assert (await jobs.get_job(database, job.id)).state == "available"  # type: ignore[union-attr]
        with Recorder() as recorder:
            await node.resume("default")
            await recorder.wait(1)
        assert not (await node.queue_info("default")).paused


async def test_scaling_changes_how_many_run_at_once(backend: Backend) -> None:
    registry, counter = jobs.WorkerRegistry(), Concurrency()
    worker = sleeper(registry, counter, 10.0)
    async with (
        backend.database() as database,
        running(database, registry, queues={"default": 2}) as node,
    ):
        await jobs.enqueue_many(database, [worker.new({"n": n}) for n in range(12)])
        await eventually(lambda: _at(counter.now == 2), "2 running")
        await node.scale("default", 5)
        await eventually(lambda: _at(counter.now == 5), "5 running")
        assert (await node.queue_info("default")).limit == 5
        await node.scale("default", 1)
        await asyncio.sleep(10.5)  # the five running end; one starts
        assert counter.now == 1
        with pytest.raises(ValueError, match="from 1 to 10000"):
            await node.scale("default", 0)


async def test_an_idle_queue_is_woken_by_an_insert_not_its_poll(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()
    ran_at: list[float] = []

    @registry.worker
    async def note(job: jobs.Job) -> None:
        ran_at.append(clock.monotonic())

    # The poll is an hour away; the stager's round keeps a timer near, so that the mock clock,
    # moving on when the database is slow to answer, moves by seconds, not by the hour.
    options = {"poll_interval_s": 3600, "stage_interval_s": 1}
    async with backend.database() as database, running(database, registry, **options):
        await asyncio.sleep(5)  # idle, having fetched nothing
        enqueued_at = clock.monotonic()
        with Recorder() as recorder:
            await jobs.enqueue(database, note, {})
            await recorder.wait(1)
        assert ran_at[0] - enqueued_at < 5  # woken: not the poll, an hour away


async def test_a_job_nobody_announced_is_found_by_the_poll(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()
    ran_at: list[float] = []

    @registry.worker(name="quiet")
    async def quiet(job: jobs.Job) -> None:
        ran_at.append(clock.monotonic())

    async with backend.database() as database, running(database, registry, poll_interval_s=30):
        await asyncio.sleep(1)
        inserted_at = clock.monotonic()
        await database.execute(  # written by hand: no notification
            f"INSERT INTO {jobs.TABLE} (state, queue, worker, inserted_at, scheduled_at) "
            "VALUES ('available', 'default', 'quiet', $1, $1)",
            clock.now(),
        )
        with Recorder() as recorder:
            await recorder.wait(1)
        assert 0 < ran_at[0] - inserted_at <= 30


async def test_outcomes_are_written_in_batches(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def nothing(job: jobs.Job) -> None:
        pass

    async with backend.database() as database, running(database, registry, queues={"default": 50}):
        with telemetry.capture([("trunkline", "db", "query", "stop")]) as statements:
            stored = await jobs.enqueue_many(database, [nothing.new({"n": n}) for n in range(300)])
            await wait_for_state(database, stored[-1].id, "completed")
            await eventually(lambda: _all_completed(database, 300), "all completed")
        completes = [s for s in statements if s.metadata["statement"] == "jobs.complete"]
        fetches = [s for s in statements if s.metadata["statement"] == "jobs.fetch"]
        assert sum(s.measurements["rows"] for s in completes) == 300
        assert len(completes) < 300 / 5
        assert len(fetches) < 300 / 5


async def test_a_database_outage_is_waited_out_without_restarts(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def slow(job: jobs.Job) -> None:
        await asyncio.sleep(5)

    async with backend.broken_database() as (database, outage), running(database, registry) as node:
        producer, queue = process_of(node, "producer"), process_of(node, "queue")
        before = await jobs.enqueue(database, slow, {})
        await eventually(lambda: _running(node, 1), "the job runs")
        async with outage:
            await asyncio.sleep(20)  # it ends meanwhile; polls fail, again and again
        done = await wait_for_state(database, before.id, "completed")  # written once back
        assert done.attempt == 1
        after = await jobs.enqueue(database, slow, {})
        await wait_for_state(database, after.id, "completed")
        assert process_of(node, "producer") is producer
        assert process_of(node, "queue") is queue
        assert otp.is_alive(producer)
        failures = [r for r in caplog.records if "trying again in" in r.getMessage()]
        assert len(failures) >= 3
        assert all(r.levelno == logging.WARNING for r in failures)


async def test_a_malformed_row_is_discarded_with_the_reason(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker(name="fine")
    async def fine(job: jobs.Job) -> str:
        return "ok"

    async with backend.database() as database, running(database, registry) as node:
        producer = process_of(node, "producer")
        insert = (
            f"INSERT INTO {jobs.TABLE} (state, queue, worker, args, meta, inserted_at, "
            "scheduled_at) VALUES ('available', 'default', 'fine', $1, $2, $3, $3) RETURNING id"
        )
        now = otp.current_node().clock.now()
        bad = [await database.fetch_val(insert, "{}", '"not an object"', now)]
        if backend.name == "sqlite":  # PostgreSQL's JSONB refuses invalid JSON on the way in
            bad.append(await database.fetch_val(insert, "{not json", "{}", now))
        good = await jobs.enqueue(database, fine, {})
        await wait_for_state(database, good.id, "completed")
        engine = engine_for(database)
        for job_id in bad:
            # Written by the queue's writer, in its own batch: maybe after the good one's.
            await eventually(
                lambda job_id=job_id: _is(engine.state_of(database, job_id), "discarded"),
                f"{job_id} discarded",
            )
            row = await engine.get(database, job_id)
            assert row is not None
            assert row["state"] == "discarded"
            [error] = _json(row["errors"])
            assert error["type"] == "trunkline.jobs.exceptions.MalformedJob"
            assert f"job {job_id}" in error["message"]
            with pytest.raises(jobs.MalformedJob):
                await jobs.get_job(database, job_id)
        assert process_of(node, "producer") is producer


async def _at(condition: bool) -> bool:
    return condition


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _running(node: jobs.Jobs, count: int) -> bool:
    return (await node.queue_info("default")).running == count


async def _all_completed(database: object, count: int) -> bool:
    stats = await jobs.queue_stats(database)  # type: ignore[arg-type]
    return stats.get("default", {}).get("completed") == count


def _json(text: str) -> list[dict[str, object]]:
    import json

    value: list[dict[str, object]] = json.loads(text)
    return value
