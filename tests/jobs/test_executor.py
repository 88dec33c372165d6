"""A queue's executor: each job a process of its own. A job that fails, crashes, is killed or
runs too long is a failed attempt recorded on its row, never a stuck row or a dead queue; a
cancelled job stops at once and frees its slot."""

from __future__ import annotations

import asyncio
from typing import Any

from job_backends import Backend, Recorder, eventually, process_of, running, wait_for_state

from trunkline import jobs, otp
from trunkline.otp import MockClock


async def test_a_failing_job_is_retried_and_the_queue_goes_on(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def flaky(job: jobs.Job) -> None:
        if job.args["fail"]:
            raise RuntimeError("boom")

    async with backend.database() as database, running(database, registry) as node:
        producer, executor = process_of(node, "producer"), process_of(node, "executor")
        failed = await jobs.enqueue(database, flaky, {"fail": True})
        fine = await jobs.enqueue(database, flaky, {"fail": False})
        await wait_for_state(database, fine.id, "completed")
        retryable = await wait_for_state(database, failed.id, "retryable")
        assert [e["message"] for e in retryable.errors] == ["boom"]
        assert process_of(node, "producer") is producer
        assert process_of(node, "executor") is executor


async def test_a_job_killed_by_a_process_it_linked_to_fails_its_attempt(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    async def helper() -> None:
        await asyncio.sleep(1)
        raise LookupError("the helper crashed")

    @registry.worker
    async def linked(job: jobs.Job) -> None:
        otp.spawn_link(helper)
        await asyncio.sleep(3600)

    async with backend.database() as database, running(database, registry):
        job = await jobs.enqueue(database, linked, {})
        retryable = await wait_for_state(database, job.id, "retryable")
        [error] = retryable.errors
        assert (error["type"], error["message"], error["attempt"]) == (
            "LookupError",
            "the helper crashed",
            1,
        )


async def test_a_job_that_exits_its_process_fails_its_attempt(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker(max_attempts=1)
    async def leaves(job: jobs.Job) -> None:
        raise otp.ProcessExit("bye")

    async with backend.database() as database, running(database, registry):
        job = await jobs.enqueue(database, leaves, {})
        discarded = await wait_for_state(database, job.id, "discarded")
        [error] = discarded.errors
        assert error["type"] == "trunkline.jobs.exceptions.JobExited"
        assert "exited with reason 'bye'" in error["message"]


async def test_a_job_past_its_timeout_fails_its_attempt(backend: Backend, clock: MockClock) -> None:
    registry = jobs.WorkerRegistry()
    stopped: list[float] = []

    @registry.worker(timeout_s=5, max_attempts=2, backoff=lambda job: 1.0)
    async def slow(job: jobs.Job) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(clock.monotonic())
            raise

    async with backend.database() as database, running(database, registry):
        job = await jobs.enqueue(database, slow, {})
        discarded = await wait_for_state(database, job.id, "discarded")
        assert [e["type"] for e in discarded.errors] == ["trunkline.jobs.exceptions.JobTimeout"] * 2
        assert len(stopped) == 2
        assert discarded.attempt == 2


async def test_cancelling_a_running_job_stops_it_and_frees_its_slot(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    started, stopped = asyncio.Event(), asyncio.Event()

    @registry.worker
    async def forever(job: jobs.Job) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise

    @registry.worker
    async def quick(job: jobs.Job) -> str:
        return "done"

    async with (
        backend.database() as database,
        running(database, registry, queues={"default": 1}) as node,
    ):
        long = await jobs.enqueue(database, forever, {})
        await started.wait()
        waiting = await jobs.enqueue(database, quick, {})
        [(pid, _)] = node.running.lookup(long.id)
        cancelled = await node.cancel_job(long.id)
        assert cancelled is not None
        assert cancelled.state == "cancelled"
        assert not otp.is_alive(pid)  # its process ended before cancel_job returned
        await stopped.wait()  # and its task was cancelled
        await wait_for_state(database, waiting.id, "completed")  # the slot came free
        still = await jobs.get_job(database, long.id)
        assert still is not None
        assert (still.state, still.errors) == ("cancelled", [])
        assert node.running.lookup(long.id) == []


async def test_a_cancelled_job_that_ends_anyway_stays_cancelled(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    release = asyncio.Event()

    @registry.worker
    async def stubborn(job: jobs.Job) -> Any:
        try:
            await release.wait()
        finally:
            return "finished"  # noqa: B012 - swallows the cancellation, as bad code does

    async with backend.database() as database, running(database, registry) as node:
        job = await jobs.enqueue(database, stubborn, {})
        await eventually(lambda: _has(node, job.id), "the job runs")
        await node.cancel_job(job.id)
        release.set()
        await asyncio.sleep(2)
        assert (await jobs.get_job(database, job.id)).state == "cancelled"  # type: ignore[union-attr]


async def _has(node: jobs.Jobs, job_id: int) -> bool:
    return bool(node.running.lookup(job_id))


async def test_the_running_jobs_are_in_the_nodes_registry(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    release = asyncio.Event()

    @registry.worker
    async def waits(job: jobs.Job) -> None:
        await release.wait()

    async with backend.database() as database, running(database, registry) as node:
        with Recorder() as recorder:
            stored = await jobs.enqueue_many(database, [waits.new({"n": n}) for n in range(3)])
            await eventually(lambda: _count(node, 3), "three run")
            for job in stored:
                [(pid, queue)] = node.running.lookup(job.id)
                assert queue == "default"
                assert otp.is_alive(pid)
            release.set()
            await recorder.wait(3)
        await eventually(lambda: _count(node, 0), "none runs")


async def _count(node: jobs.Jobs, count: int) -> bool:
    return node.running.count() == count
