"""Graceful shutdown: a stopping queue fetches no more, lets running jobs finish within the
grace period, then stops the rest and puts them back; nothing stays executing."""

from __future__ import annotations

import asyncio

from job_backends import Backend, eventually, process_of, running

from trunkline import jobs, otp
from trunkline.otp import MockClock


async def test_running_jobs_finish_within_the_grace_period(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def short(job: jobs.Job) -> None:
        await asyncio.sleep(3)

    async with backend.database() as database:
        async with running(database, registry, shutdown_grace_s=10) as node:
            job = await jobs.enqueue(database, short, {})
            await eventually(lambda: _running(node, 1), "the job runs")
            queued = await jobs.enqueue(database, short, {}, queue="default", priority=9)
            stopping_at = clock.monotonic()
        stopped_at = clock.monotonic()
        assert stopped_at - stopping_at < 5  # no need to wait for the 10 s grace period
        assert (await jobs.get_job(database, job.id)).state == "completed"  # type: ignore[union-attr]
        left = await jobs.get_job(database, queued.id)
        assert left is not None
        assert (left.state, left.attempt) in {("available", 0), ("completed", 1)}
        assert (await jobs.queue_stats(database))["default"]["executing"] == 0


async def test_jobs_still_running_after_the_grace_period_are_put_back(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()
    stopped = asyncio.Event()

    @registry.worker
    async def endless(job: jobs.Job) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise

    async with backend.database() as database:
        async with running(database, registry, shutdown_grace_s=5, queues={"default": 3}) as node:
            stored = await jobs.enqueue_many(database, [endless.new({"n": n}) for n in range(3)])
            await eventually(lambda: _running(node, 3), "three run")
            stopping_at = clock.monotonic()
        # The grace period, then stopped (not the hour the jobs wanted). A database reply
        # slower than the clock's idle threshold lets virtual time jump to the next timer,
        # a poll a second away, hence the margin.
        assert 5 <= clock.monotonic() - stopping_at < 10
        await stopped.wait()
        for job in stored:
            back = await jobs.get_job(database, job.id)
            assert back is not None
            # Put back, the interrupted attempt given back: it was not the job's failure.
            assert (back.state, back.attempt, back.errors) == ("available", 0, [])
        assert (await jobs.queue_stats(database))["default"]["executing"] == 0


async def test_a_restarted_queue_puts_back_what_its_previous_run_left_executing(
    backend: Backend,
) -> None:
    registry = jobs.WorkerRegistry()
    attempts: list[int] = []

    @registry.worker
    async def once_slow(job: jobs.Job) -> None:
        attempts.append(job.attempt)
        if len(attempts) == 1:
            await asyncio.sleep(3600)

    async with backend.database() as database, running(database, registry) as node:
        job = await jobs.enqueue(database, once_slow, {})
        await eventually(lambda: _running(node, 1), "the job runs")
        producer = process_of(node, "producer")
        otp.exit(producer, otp.KILL)  # its queue's tree restarts, the job's process with it
        await eventually(lambda: _state(database, job.id, "completed"), "the job ran again")
        assert process_of(node, "producer") is not producer
        assert attempts == [1, 1]  # put back, its attempt given back, then run again


async def _running(node: jobs.Jobs, count: int) -> bool:
    return (await node.queue_info("default")).running == count


async def _state(database: object, job_id: int, state: str) -> bool:
    job = await jobs.get_job(database, job_id)  # type: ignore[arg-type]
    return job is not None and job.state == state
