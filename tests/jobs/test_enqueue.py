"""Enqueueing, on SQLite and PostgreSQL: one, many in one statement, in the caller's
transaction, now or later, unique ones (even when two enqueue at once)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from job_backends import Backend

from trunkline import db, jobs
from trunkline.otp import MockClock, telemetry


@jobs.worker(queue="mail", priority=2, max_attempts=5, tags=["mail"])
async def send(job: jobs.Job) -> None: ...


async def test_a_job_is_stored_as_returned(backend: Backend, clock: MockClock) -> None:
    async with backend.database() as database:
        job = await jobs.enqueue(database, send, {"to": "ada"}, meta={"trace": "x"})
        assert job.id > 0
        assert (job.worker, job.queue, job.priority, job.max_attempts) == (send.name, "mail", 2, 5)
        assert (job.state, job.attempt, job.errors, job.tags) == ("available", 0, [], ["mail"])
        assert job.inserted_at == job.scheduled_at == clock.now()
        assert not job.conflict
        assert await jobs.get_job(database, job.id) == job


async def test_by_name_or_prepared(backend: Backend) -> None:
    async with backend.database() as database:
        by_name = await jobs.enqueue(database, "elsewhere.report", {"day": 1}, queue="reports")
        assert (by_name.worker, by_name.queue, by_name.max_attempts) == (
            "elsewhere.report",
            "reports",
            20,
        )
        prepared = await jobs.enqueue(database, send.new({"to": "bob"}, priority=0))
        assert (prepared.worker, prepared.priority) == (send.name, 0)
        with pytest.raises(jobs.InvalidJob, match="takes a NewJob alone"):
            await jobs.enqueue(database, send.new({}), {"more": 1})
        with pytest.raises(jobs.InvalidJob, match="needs a Worker"):
            await jobs.enqueue(database, 42, {})  # type: ignore[arg-type]


async def test_arguments_that_are_not_json_write_nothing(backend: Backend) -> None:
    async with backend.database() as database:
        with pytest.raises(jobs.InvalidJob, match="args\\['at'\\] is a set"):
            await jobs.enqueue(database, send, {"at": {1}})
        assert await jobs.list_jobs(database) == []


async def test_many_go_in_one_statement_in_order(backend: Backend) -> None:
    async with backend.database() as database:
        batch = [send.new({"n": n}, priority=n % 3) for n in range(250)]
        with telemetry.capture([("trunkline", "db", "query", "stop")]) as statements:
            stored = await jobs.enqueue_many(database, batch)
        assert [s.metadata["statement"] for s in statements] == ["jobs.insert_many"]
        assert [job.args for job in stored] == [{"n": n} for n in range(250)]
        assert [job.id for job in stored] == sorted(job.id for job in stored)
        for job in stored[::50]:
            assert await jobs.get_job(database, job.id) == job
        assert await jobs.enqueue_many(database, []) == []
        with pytest.raises(jobs.InvalidJob, match="takes NewJob objects"):
            await jobs.enqueue_many(database, [{"n": 1}])  # type: ignore[list-item]


async def test_in_the_callers_transaction_they_exist_only_if_it_commits(backend: Backend) -> None:
    async with backend.database() as database:
        await database.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY)")
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO orders (id) VALUES ($1)", 1)
            kept = await jobs.enqueue(tx, send, {"order": 1})
            [kept_too] = await jobs.enqueue_many(tx, [send.new({"order": 1, "copy": True})])

        async def failed_order() -> None:
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO orders (id) VALUES ($1)", 2)
                await jobs.enqueue(tx, send, {"order": 2})
                await jobs.enqueue(tx, send, {"order": 2}, unique=jobs.Unique())
                raise RuntimeError("the order failed")

        with pytest.raises(RuntimeError):
            await failed_order()
        listed = await jobs.list_jobs(database)
        assert sorted(job.id for job in listed) == [kept.id, kept_too.id]


async def test_later_or_at_a_time(backend: Backend, clock: MockClock) -> None:
    async with backend.database() as database:
        now = clock.now()
        later = await jobs.enqueue(database, send, {}, in_s=90)
        assert (later.state, later.scheduled_at) == ("scheduled", now + timedelta(seconds=90))
        at = await jobs.enqueue(database, send, {}, scheduled_at=now + timedelta(hours=2))
        assert (at.state, at.scheduled_at) == ("scheduled", now + timedelta(hours=2))
        past = await jobs.enqueue(database, send, {}, scheduled_at=now - timedelta(hours=2))
        assert (past.state, past.scheduled_at) == ("available", now - timedelta(hours=2))
        zero = await jobs.enqueue(database, send, {}, in_s=0)
        assert (zero.state, zero.scheduled_at) == ("available", now)
        for job in (later, at, past, zero):
            assert await jobs.get_job(database, job.id) == job


async def test_available_jobs_notify_their_queue_on_commit(backend: Backend) -> None:
    async with backend.database() as database, database.listen(jobs.INSERT_CHANNEL) as heard:
        await jobs.enqueue(database, send, {}, in_s=60)  # scheduled: no wake-up

        async def rolled_back() -> None:
            async with database.transaction() as tx:
                await jobs.enqueue(tx, send, {}, queue="rolled-back")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await rolled_back()
        async with database.transaction() as tx:
            await jobs.enqueue(tx, send, {}, queue="committed")
        await jobs.enqueue_many(database, [send.new({}, queue="a"), send.new({}, queue="b")])
        await jobs.enqueue(database, send, {})
        notes = [await asyncio.wait_for(heard.get(), 5) for _ in range(4)]
        assert [note.payload for note in notes] == ["committed", "a", "b", "mail"]
        assert heard.get_nowait() is None


async def test_a_unique_duplicate_returns_the_existing_job(
    backend: Backend, clock: MockClock
) -> None:
    async with backend.database() as database:
        unique = jobs.Unique(period_s=60, keys=["user"])
        first = await jobs.enqueue(database, send, {"user": 1, "n": 1}, unique=unique)
        again = await jobs.enqueue(database, send, {"user": 1, "n": 2}, unique=unique)
        assert (again.id, again.conflict, again.args) == (first.id, True, {"user": 1, "n": 1})
        other = await jobs.enqueue(database, send, {"user": 2}, unique=unique)
        assert not other.conflict
        clock.jump(61)  # the period is over: a new one is welcome
        later = await jobs.enqueue(database, send, {"user": 1, "n": 3}, unique=unique)
        assert (later.conflict, later.id > other.id) == (False, True)
        assert len(await jobs.list_jobs(database)) == 3


async def test_unique_among_chosen_states(backend: Backend) -> None:
    async with backend.database() as database:
        unique = jobs.Unique(period_s=None)
        first = await jobs.enqueue(database, send, {"x": 1}, unique=unique)
        await jobs.cancel_job(database, first.id)
        # A cancelled job does not count among the default states.
        second = await jobs.enqueue(database, send, {"x": 1}, unique=unique)
        assert not second.conflict
        with_cancelled = jobs.Unique(period_s=None, states=["cancelled"])
        third = await jobs.enqueue(database, send, {"x": 1}, unique=with_cancelled)
        assert (third.conflict, third.id) == (True, first.id)


async def test_unique_jobs_in_a_batch(backend: Backend) -> None:
    async with backend.database() as database:
        unique = jobs.Unique()
        stored = await jobs.enqueue_many(
            database,
            [
                send.new({"a": 1}, unique=unique),
                send.new({"b": 1}),
                send.new({"a": 1}, unique=unique),
            ],
        )
        assert [job.conflict for job in stored] == [False, False, True]
        assert stored[2].id == stored[0].id
        assert len(await jobs.list_jobs(database)) == 2


async def test_a_unique_job_enqueued_at_once_from_two_connections_exists_once(
    backend: Backend,
) -> None:
    async with backend.databases(2) as (one, two):
        unique = jobs.Unique(period_s=None)

        async def enqueue(database: db.Database, n: int) -> jobs.Job:
            async with database.transaction() as tx:
                job = await jobs.enqueue(tx, send, {"report": "daily"}, unique=unique)
                await asyncio.sleep(0.01)  # hold the transaction open: the other one waits
                return job

        results = await asyncio.gather(*(enqueue(db_, n) for n, db_ in enumerate([one, two] * 4)))
        assert len({job.id for job in results}) == 1
        assert sorted(job.conflict for job in results) == [False] + [True] * 7
        assert len(await jobs.list_jobs(one)) == 1


async def test_a_burst_of_enqueues_wakes_each_queue(backend: Backend) -> None:
    async with backend.database() as database, database.listen(jobs.INSERT_CHANNEL) as heard:
        await asyncio.gather(
            *(jobs.enqueue(database, send, {"n": n}, queue=f"q{n % 2}") for n in range(40))
        )
        await jobs.enqueue(database, send, {}, queue="last")  # a barrier: notified after
        payloads = []
        while not payloads or payloads[-1] != "last":
            payloads.append((await asyncio.wait_for(heard.get(), 5)).payload)
        assert set(payloads) == {"q0", "q1", "last"}
        if backend.name == "postgresql":
            # Outside a transaction the wake-ups follow the commits, a burst's together:
            # notifying commits would hold each other up.
            assert len(payloads) < 41
