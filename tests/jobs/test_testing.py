"""The testing helpers for users: drain a queue inline, assert on what was enqueued."""

from __future__ import annotations

import pytest
from job_backends import Backend

from trunkline import jobs
from trunkline.jobs.testing import (
    DrainResult,
    all_enqueued,
    assert_enqueued,
    drain,
    refute_enqueued,
)

registry = jobs.WorkerRegistry()
ran: list[object] = []


@registry.worker(queue="mail")
async def send(job: jobs.Job) -> None:
    ran.append(job.args)


@registry.worker(queue="mail", max_attempts=2, backoff=lambda job: 60.0)
async def broken(job: jobs.Job) -> None:
    raise ValueError("broken")


@registry.worker(queue="mail")
async def chain(job: jobs.Job) -> None:
    if job.args["left"]:
        await jobs.enqueue(job_database[0], chain, {"left": job.args["left"] - 1})


snoozed: set[int] = set()


@registry.worker(queue="mail")
async def picky(job: jobs.Job) -> object:
    if job.args.get("snooze"):
        if job.args["snooze"] == "always" or job.id not in snoozed:
            snoozed.add(job.id)
            return jobs.Snooze(10)
        return None
    return jobs.Discard("no")


job_database: list[object] = []


async def test_drain_runs_a_queue_inline_until_it_is_empty(backend: Backend) -> None:
    ran.clear()
    async with backend.database() as database:
        job_database[:] = [database]
        await jobs.enqueue_many(database, [send.new({"n": n}) for n in range(3)])
        await jobs.enqueue(database, send, {"n": "other queue"}, queue="push")
        await jobs.enqueue(database, chain, {"left": 2})
        result = await drain(database, "mail", registry=registry)
        assert result == DrainResult(completed=6)
        assert result.total == 6
        assert ran == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert (await jobs.queue_stats(database))["push"]["available"] == 1


async def test_drain_counts_each_outcome(backend: Backend) -> None:
    snoozed.clear()
    async with backend.database() as database:
        await jobs.enqueue(database, broken, {})
        await jobs.enqueue(database, picky, {"snooze": "once"})
        await jobs.enqueue(database, picky, {})
        await jobs.enqueue(database, "nobody", {}, queue="mail")
        assert await drain(database, "mail", registry=registry) == DrainResult(
            retryable=1, snoozed=1, discarded=2
        )
        # Waiting for their time: only with_scheduled runs them now (the broken one until
        # it gives up).
        assert await drain(database, "mail", registry=registry) == DrainResult()
        assert await drain(database, "mail", registry=registry, with_scheduled=True) == DrainResult(
            discarded=1, completed=1
        )


async def test_drain_gives_up_on_a_job_that_never_ends(backend: Backend) -> None:
    async with backend.database() as database:
        await jobs.enqueue(database, picky, {"snooze": "always"})
        with pytest.raises(RuntimeError, match="ran 50 attempts and jobs are still there"):
            await drain(database, "mail", registry=registry, with_scheduled=True, max_runs=50)


async def test_drain_can_raise_what_a_job_raised(backend: Backend) -> None:
    async with backend.database() as database:
        job = await jobs.enqueue(database, broken, {})
        with pytest.raises(ValueError, match="broken"):
            await drain(database, "mail", registry=registry, raise_errors=True)
        stored = await jobs.get_job(database, job.id)
        assert stored is not None
        assert stored.state == "retryable"  # written before raising


async def test_assert_enqueued_finds_a_matching_waiting_job(backend: Backend) -> None:
    async with backend.database() as database:
        job = await jobs.enqueue(database, send, {"to": "ada", "lang": "en"})
        later = await jobs.enqueue(database, send, {"to": "bob"}, in_s=60)
        assert await assert_enqueued(database, worker=send, args={"to": "ada"}) == job
        assert (
            await assert_enqueued(database, worker=send.name, queue="mail", args={"to": "bob"})
            == later
        )
        assert await all_enqueued(database, worker=send) == [later, job]
        await refute_enqueued(database, worker=send, args={"to": "carol"})
        await refute_enqueued(database, queue="push")


async def test_their_failures_say_what_was_there(backend: Backend) -> None:
    async with backend.database() as database:
        await jobs.enqueue(database, send, {"to": "ada"})
        with pytest.raises(
            AssertionError, match=r"with args \{'to': 'bob'\}.*found only:\n.*'to': 'ada'"
        ):
            await assert_enqueued(database, worker=send, args={"to": "bob"})
        with pytest.raises(AssertionError, match="found none"):
            await assert_enqueued(database, worker=broken)
        with pytest.raises(AssertionError, match=r"expected no job of .*send.*found"):
            await refute_enqueued(database, worker=send)
        with pytest.raises(jobs.InvalidJob, match="worker must be a Worker"):
            await assert_enqueued(database, worker=42)  # type: ignore[arg-type]
