"""A busy queue takes a few jobs ahead of its free slots: it still runs no more than its
limit, and the jobs it holds are given back when it pauses or stops, and never run once
cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from job_backends import Backend, Concurrency, eventually, running, wait_for_state

from trunkline import db, jobs

LIMIT = 2
QUICK = 40  # jobs of 10 ms: enough for the queue to see its rate
BLOCKERS = 6  # then jobs that wait for the gate, behind them


@dataclass
class Blocked:
    """Workers for the scenario: quick jobs, then blockers that run until the gate opens."""

    registry: jobs.WorkerRegistry = field(default_factory=jobs.WorkerRegistry)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    counter: Concurrency = field(default_factory=Concurrency)
    started: list[int] = field(default_factory=list)  # blockers, as they start

    def __post_init__(self) -> None:
        @self.registry.worker(name="quick")
        async def quick(job: jobs.Job) -> None:
            with self.counter:
                await asyncio.sleep(0.01)

        @self.registry.worker(name="blocker")
        async def blocker(job: jobs.Job) -> None:
            self.started.append(job.id)
            with self.counter:
                await self.gate.wait()

        self.quick, self.blocker = quick, blocker

    async def enqueue(self, database: db.Database, blockers: int = BLOCKERS) -> list[jobs.Job]:
        """The quick jobs, then the blockers (a lower priority, so they come after)."""
        await jobs.enqueue_many(database, [self.quick.new({"n": n}) for n in range(QUICK)])
        return await jobs.enqueue_many(
            database, [self.blocker.new({"n": n}, priority=5) for n in range(blockers)]
        )


async def held_jobs(node: jobs.Jobs, scenario: Blocked) -> None:
    """Wait until the queue runs two blockers and holds two more, and the quick jobs'
    outcomes are written."""

    async def check() -> bool:
        info = await node.queue_info("default")
        return (
            len(scenario.started) == info.running == info.held == LIMIT
            and len(await executing(node.database)) == 2 * LIMIT
        )

    await eventually(check, "two blockers run and two are held")


@asynccontextmanager
async def holding(
    backend: Backend, blockers: int = BLOCKERS
) -> AsyncIterator[tuple[Blocked, db.Database, jobs.Jobs, list[jobs.Job]]]:
    """A queue running two of ``blockers`` and holding two more: the scenario, the
    database, the node and the blockers."""
    scenario = Blocked()
    async with (
        backend.database() as database,
        running(database, scenario.registry, queues={"default": LIMIT}) as node,
    ):
        stored = await scenario.enqueue(database, blockers)
        await held_jobs(node, scenario)
        yield scenario, database, node, stored


async def executing(database: db.Database) -> set[int]:
    return {job.id for job in await jobs.list_jobs(database, state="executing")}


async def test_a_busy_queue_holds_jobs_ahead_and_runs_no_more_than_its_limit(
    backend: Backend,
) -> None:
    async with holding(backend) as (scenario, database, _, blockers):
        # Two running, two held, both taken in the database: the held ones are blockers.
        taken = await executing(database)
        assert set(scenario.started) < taken <= {job.id for job in blockers}
        scenario.gate.set()
        for job in blockers:
            done = await wait_for_state(database, job.id, "completed")
            assert done.attempt == 1
        assert scenario.counter.most == LIMIT
        assert scenario.counter.done == QUICK + BLOCKERS
        assert sorted(scenario.started) == sorted(job.id for job in blockers)  # each once


async def test_pausing_gives_back_the_held_jobs(backend: Backend) -> None:
    async with holding(backend) as (scenario, database, node, blockers):
        held = await executing(database) - set(scenario.started)
        await node.pause("default")
        assert (await node.queue_info("default")).running == LIMIT

        async def given_back() -> bool:
            return await executing(database) == set(scenario.started)

        await eventually(given_back, "the held jobs are given back")
        assert (await node.queue_info("default")).held == 0
        for job_id in held:
            back = await jobs.get_job(database, job_id)
            assert back is not None
            assert (back.state, back.attempt) == ("available", 0)  # the attempt given back

        scenario.gate.set()  # the running two finish; nothing starts while paused
        for job_id in scenario.started:
            await wait_for_state(database, job_id, "completed")
        assert len(scenario.started) == LIMIT
        stats = await jobs.queue_stats(database)
        assert stats["default"]["available"] == BLOCKERS - LIMIT

        await node.resume("default")
        for job in blockers:
            assert (await wait_for_state(database, job.id, "completed")).attempt == 1


async def test_a_cancelled_held_job_never_runs(backend: Backend) -> None:
    async with holding(backend) as (scenario, database, node, blockers):
        victim = min(await executing(database) - set(scenario.started))
        cancelled = await node.cancel_job(victim)
        assert cancelled is not None
        assert cancelled.state == "cancelled"
        scenario.gate.set()
        for job in blockers:
            if job.id != victim:
                await wait_for_state(database, job.id, "completed")
        assert victim not in scenario.started
        assert len(scenario.started) == BLOCKERS - 1
        after = await jobs.get_job(database, victim)
        assert after is not None
        assert after.state == "cancelled"
        assert (await node.queue_info("default")).held == 0


async def test_stopping_gives_back_the_held_jobs(backend: Backend) -> None:
    scenario = Blocked()
    async with backend.database() as database:
        async with running(
            database, scenario.registry, queues={"default": LIMIT}, shutdown_grace_s=1
        ) as node:
            blockers = await scenario.enqueue(database)
            await held_jobs(node, scenario)
        # The two held jobs given back at once, the two running ones after the grace period:
        # all four available, none with an attempt counted.
        assert len(scenario.started) == LIMIT
        assert await executing(database) == set()
        for job in blockers:
            back = await jobs.get_job(database, job.id)
            assert back is not None
            assert (back.state, back.attempt) == ("available", 0)


async def test_a_higher_limit_starts_the_held_jobs_at_once(backend: Backend) -> None:
    # Two run, two are held, none is left to fetch: only the executor can start them.
    async with holding(backend, blockers=2 * LIMIT) as (scenario, _, node, blockers):
        await node.scale("default", 2 * LIMIT, local_only=True)

        async def four_run() -> bool:
            return len(scenario.started) == 2 * LIMIT

        # Without any job ending: the held two start as soon as the limit allows.
        await eventually(four_run, "the held jobs start")
        assert (await node.queue_info("default")).running == 2 * LIMIT
        scenario.gate.set()
        for job in blockers:
            await wait_for_state(node.database, job.id, "completed")
