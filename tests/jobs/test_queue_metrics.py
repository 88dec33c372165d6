"""Queue metrics: depth per state, this node's running and limit, and rates, emitted per queue
only while a handler listens."""

from __future__ import annotations

import asyncio

from job_backends import Backend, Recorder, running

from trunkline import db, jobs, otp


async def test_nothing_is_counted_without_a_handler(backend: Backend) -> None:
    async with backend.database() as database:
        with otp.telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
            async with running(database, jobs.WorkerRegistry(), metrics_interval_s=1):
                await asyncio.sleep(10)
        assert [s for s in statements if s.metadata["statement"] == "jobs.stats"] == []


async def test_depths_running_limit_and_rates_per_queue(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    release = asyncio.Event()

    @registry.worker(name="quick")
    async def quick(job: jobs.Job) -> None:
        pass

    @registry.worker(name="blocks", queue="slow")
    async def blocks(job: jobs.Job) -> None:
        await release.wait()

    async with (
        backend.database() as database,
        running(database, registry, queues={"default": 4, "slow": 2}, metrics_interval_s=10),
    ):
        await asyncio.sleep(11)  # one round without listeners: nothing to see
        with Recorder() as recorder:
            await jobs.enqueue_many(database, [quick.new({}) for _ in range(5)])
            await jobs.enqueue(database, blocks, {})
            await jobs.enqueue(database, quick, {}, in_s=3600)
            await recorder.wait(5)
        with otp.telemetry.capture([jobs.QUEUE_EVENT]) as seen:
            await asyncio.sleep(10)
        release.set()
    by_queue = {e.metadata["queue"]: e for e in seen}
    assert set(by_queue) == {"default", "slow"}
    default, slow = by_queue["default"].measurements, by_queue["slow"].measurements
    assert by_queue["default"].metadata == {
        "queue": "default",
        "node": "test-node",
        "paused": False,
    }
    assert {k: default[k] for k in jobs.STATES} == {
        "scheduled": 1,
        "available": 0,
        "executing": 0,
        "retryable": 0,
        "completed": 5,
        "discarded": 0,
        "cancelled": 0,
    }
    assert (default["running"], default["limit"]) == (0, 4)
    assert (slow["executing"], slow["running"], slow["limit"]) == (1, 1, 2)
    # The five completed within the round that this event closes (10 s).
    assert default["completed_per_s"] == default["ended_per_s"] == 0.5
    assert default["retryable_per_s"] == 0
    assert slow["ended_per_s"] == 0
