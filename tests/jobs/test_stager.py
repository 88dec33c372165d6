"""The stager: scheduled jobs run when they are due, retries when their backoff is over, to
the clock's precision."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from job_backends import Backend, Recorder, running, wait_for_state

from trunkline import db, jobs
from trunkline.jobs.engine import EPOCH
from trunkline.otp import MockClock, telemetry


async def test_a_scheduled_job_runs_when_it_is_due(backend: Backend, clock: MockClock) -> None:
    registry = jobs.WorkerRegistry()
    ran_at: list[float] = []

    @registry.worker
    async def later(job: jobs.Job) -> None:
        ran_at.append(clock.monotonic())

    async with backend.database() as database, running(database, registry, stage_interval_s=1):
        await asyncio.sleep(0.5)
        enqueued_at = clock.monotonic()
        with Recorder() as recorder:
            await jobs.enqueue(database, later, {}, in_s=30)
            await recorder.wait(1)
        # Found on the stager's first round after it is due (1 s), give or take the mock
        # clock moving on when the database is slow to answer.
        assert 30 <= ran_at[0] - enqueued_at < 33


async def test_a_retry_runs_when_its_backoff_is_over(backend: Backend, clock: MockClock) -> None:
    registry = jobs.WorkerRegistry()
    attempts_at: list[float] = []

    @registry.worker(backoff=lambda job: 10.0 * job.attempt, max_attempts=3)
    async def fails(job: jobs.Job) -> None:
        attempts_at.append(clock.monotonic())
        raise RuntimeError(f"attempt {job.attempt}")

    async with backend.database() as database, running(database, registry, stage_interval_s=60):
        with Recorder() as recorder:
            job = await jobs.enqueue(database, fails, {})
            await recorder.wait(3)
        gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
        # The producer tells the stager when it makes a job retryable: on time, not at the
        # next 60 s round (the margin: the mock clock moves on when the database is slow).
        assert 10 <= gaps[0] < 15
        assert 20 <= gaps[1] < 25
        stored = await wait_for_state(database, job.id, "discarded")
        assert [e["message"] for e in stored.errors] == ["attempt 1", "attempt 2", "attempt 3"]


async def test_a_due_job_it_cannot_stage_does_not_make_it_spin(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database, running(database, registry, stage_interval_s=1):
        # A retryable job that reads as due but that staging does not take: its row is
        # locked by another transaction on PostgreSQL (SKIP LOCKED passes it by); on SQLite
        # its scheduled_at is in a format of its own, which text comparison puts later.
        job = await jobs.enqueue(database, "w", {}, in_s=10)
        if backend.name == "sqlite":
            await database.execute(
                f"UPDATE {jobs.TABLE} SET state = 'retryable', "
                "scheduled_at = '2026-01-01T00:00:00+00:00' WHERE id = $1",  # sorts after now
                job.id,
            )
            stuck: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
        else:
            await database.execute(
                f"UPDATE {jobs.TABLE} SET state = 'retryable', scheduled_at = $2 WHERE id = $1",
                job.id,
                EPOCH,
            )
            stuck = database.transaction()  # holds the row: SKIP LOCKED passes it by
        async with stuck as tx:
            if tx is not None:
                await tx.execute(f"SELECT id FROM {jobs.TABLE} WHERE id = $1 FOR UPDATE", job.id)
            with telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
                await asyncio.sleep(10)
        stages = [s for s in statements if s.metadata["statement"] == "jobs.stage"]
        assert 5 <= len(stages) <= 12  # about once a second: not a busy loop
