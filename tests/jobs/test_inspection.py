"""Looking at jobs and acting on them by hand: get, list, retry, cancel, count."""

from __future__ import annotations

import asyncio

import pytest
from job_backends import Backend

from trunkline import jobs
from trunkline.jobs.engine import engine_for
from trunkline.otp import current_node


async def test_get_job(backend: Backend) -> None:
    async with backend.database() as database:
        job = await jobs.enqueue(database, "w", {"a": 1})
        assert await jobs.get_job(database, job.id) == job
        assert await jobs.get_job(database, job.id + 1000) is None


async def test_list_jobs_by_state_queue_and_worker_newest_first(backend: Backend) -> None:
    async with backend.database() as database:
        a1 = await jobs.enqueue(database, "a", {}, queue="q1")
        b1 = await jobs.enqueue(database, "b", {}, queue="q1")
        a2 = await jobs.enqueue(database, "a", {}, queue="q2", in_s=60)
        a3 = await jobs.enqueue(database, "a", {}, queue="q2")
        await jobs.cancel_job(database, a3.id)
        ids = [job.id for job in await jobs.list_jobs(database)]
        assert ids == [a3.id, a2.id, b1.id, a1.id]
        assert [j.id for j in await jobs.list_jobs(database, worker="a")] == [a3.id, a2.id, a1.id]
        assert [j.id for j in await jobs.list_jobs(database, queue="q2")] == [a3.id, a2.id]
        assert [j.id for j in await jobs.list_jobs(database, state="scheduled")] == [a2.id]
        assert [
            j.id for j in await jobs.list_jobs(database, state="cancelled", queue="q2", worker="a")
        ] == [a3.id]
        assert [j.id for j in await jobs.list_jobs(database, limit=2)] == [a3.id, a2.id]
        assert await jobs.list_jobs(database, state="completed") == []


async def test_list_jobs_checks_its_filters(backend: Backend) -> None:
    async with backend.database() as database:
        with pytest.raises(jobs.InvalidJob, match="state must be one of"):
            await jobs.list_jobs(database, state="lost")  # type: ignore[arg-type]
        with pytest.raises(jobs.InvalidJob, match="limit must be an integer >= 1"):
            await jobs.list_jobs(database, limit=0)


async def test_retry_job_makes_an_ended_job_available_now(backend: Backend) -> None:
    async with backend.database() as database:
        clock = current_node().clock
        later = await jobs.enqueue(database, "w", {}, in_s=3600, max_attempts=1)
        now_ = await jobs.enqueue(database, "w", {})
        async with database.listen(jobs.INSERT_CHANNEL) as heard:
            retried = await jobs.retry_job(database, later.id)
            assert (await asyncio.wait_for(heard.get(), 5)).payload == "default"
        assert retried is not None
        assert (retried.state, retried.scheduled_at) == ("available", clock.now())
        assert retried.max_attempts == 1  # attempt 0 < 1: still one left
        # Available or executing: nothing to do; it comes back unchanged.
        assert await jobs.retry_job(database, now_.id) == now_
        [taken] = await engine_for(database).fetch(database, "default", 1, "n", clock.now())
        unchanged = await jobs.retry_job(database, taken["id"])
        assert unchanged is not None
        assert unchanged.state == "executing"
        assert await jobs.retry_job(database, 10_000) is None


async def test_cancel_job_cancels_a_job_that_has_not_ended(backend: Backend) -> None:
    async with backend.database() as database:
        waiting = await jobs.enqueue(database, "w", {}, in_s=60)
        async with database.listen(jobs.SIGNAL_CHANNEL) as signals:
            cancelled = await jobs.cancel_job(database, waiting.id)
            assert (await asyncio.wait_for(signals.get(), 5)).payload == (
                f'{{"action": "cancel", "id": {waiting.id}}}'
            )
        assert cancelled is not None
        assert (cancelled.state, cancelled.cancelled_at) == (
            "cancelled",
            current_node().clock.now(),
        )
        again = await jobs.cancel_job(database, waiting.id)  # ended: unchanged
        assert again == cancelled
        assert await jobs.cancel_job(database, 10_000) is None


async def test_queue_stats_count_every_state_of_every_queue(backend: Backend) -> None:
    async with backend.database() as database:
        assert await jobs.queue_stats(database) == {}
        await jobs.enqueue_many(database, [jobs.new_job("w", {}, queue="mail") for _ in range(3)])
        await jobs.enqueue(database, "w", {}, queue="push", in_s=10)
        cancelled = await jobs.enqueue(database, "w", {}, queue="push")
        await jobs.cancel_job(database, cancelled.id)
        stats = await jobs.queue_stats(database)
        zero = dict.fromkeys(jobs.STATES, 0)
        assert stats == {
            "mail": {**zero, "available": 3},
            "push": {**zero, "scheduled": 1, "cancelled": 1},
        }
