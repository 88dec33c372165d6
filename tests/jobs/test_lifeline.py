"""The lifeline: the jobs a lost node left executing are rescued, their attempt counted and
the loss recorded; a live node's jobs never are, and concurrent lifelines rescue each once."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from job_backends import Backend, eventually, running, wait_for_state

from trunkline import db, jobs, otp
from trunkline.jobs.engine import engine_for


async def _executing_on(
    database: db.Database, node: str, attempted_at: datetime, *, attempt: int = 1, count: int = 1
) -> list[int]:
    """Jobs executing on ``node`` since ``attempted_at``, as its fetch would have left them."""
    ids = []
    for _ in range(count):
        job = await jobs.enqueue(database, "w", {}, max_attempts=3)
        await database.execute(
            f"UPDATE {jobs.TABLE} SET state = 'executing', attempt = $2, attempted_at = $3, "
            "attempted_by = $4 WHERE id = $1",
            job.id,
            attempt,
            attempted_at,
            node,
        )
        ids.append(job.id)
    return ids


async def _beat(database: db.Database, node: str, at: datetime) -> None:
    await jobs.engine.engine_for(database).beat(database, node, at, at, "{}")


async def _states(database: db.Database, ids: list[int]) -> list[str]:
    return [(await jobs.get_job(database, i)).state for i in ids]  # type: ignore[union-attr]


async def test_the_jobs_of_a_silent_node_are_rescued_after_rescue_after_s(
    backend: Backend,
) -> None:
    async with backend.database() as database:
        now = otp.current_node().clock.now()
        await _beat(database, "ghost", now)
        rescued = await _executing_on(database, "ghost", now, count=2)
        [exhausted] = await _executing_on(database, "ghost", now, attempt=3)
        async with running(database, jobs.WorkerRegistry(), queues={}, rescue_after_s=60):
            await asyncio.sleep(50)  # silent, but not for long enough
            assert await _states(database, [*rescued, exhausted]) == ["executing"] * 3
            job = await wait_for_state(database, rescued[0], "available", timeout_s=40)
        assert job.attempt == 1  # counted, not given back
        [error] = job.errors
        assert error["type"] == jobs.NODE_LOST == "NodeLost"
        assert (error["attempt"], error["node"], error["traceback"]) == (1, "ghost", None)
        assert error["message"].startswith("node 'ghost' is lost")
        assert "rescued by node 'test-node'" in error["message"]
        assert datetime.fromisoformat(error["at"]) - now >= timedelta(seconds=60)
        assert await _states(database, rescued) == ["available"] * 2
        gone = await jobs.get_job(database, exhausted)
        assert gone is not None
        assert (gone.state, gone.attempt) == ("discarded", 3)
        assert gone.discarded_at is not None
        assert [e["type"] for e in gone.errors] == ["NodeLost"]


async def test_a_node_without_a_row_counts_from_when_it_fetched(backend: Backend) -> None:
    async with backend.database() as database:
        now = otp.current_node().clock.now()
        [old] = await _executing_on(database, "nowhere", now - timedelta(seconds=120))
        [young] = await _executing_on(database, "starting", now)
        async with running(database, jobs.WorkerRegistry(), queues={}, rescue_after_s=60):
            await wait_for_state(database, old, "available")
            assert await _states(database, [young]) == ["executing"]
            await wait_for_state(database, young, "available", timeout_s=120)


async def test_the_jobs_of_a_killed_node_run_again_elsewhere(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    started = asyncio.Event()

    @registry.worker(name="hangs")
    async def hangs(job: jobs.Job) -> str:
        if job.attempt == 1:
            started.set()
            await asyncio.Event().wait()
        return "done"

    async with backend.databases(2) as (first, second):
        doomed = jobs.Jobs(first, registry=registry, node="doomed", migrate=False)
        supervisor = await doomed.start()
        job = await jobs.enqueue(first, hangs, {})
        await started.wait()
        # Like SIGKILL: every process at once, so none puts the job back or deletes the row
        # (a supervisor killed alone would stop its children in order, gracefully).
        tree = await otp.supervision_tree(supervisor)
        for process in tree.walk():
            if process.pid is not None:
                otp.exit(process.pid, otp.KILL)
        await eventually(lambda: _not_alive(supervisor), "the tree is gone")
        assert (await jobs.get_job(first, job.id)).state == "executing"  # type: ignore[union-attr]
        async with running(second, registry, node="rescuer", rescue_after_s=30):
            done = await wait_for_state(second, job.id, "completed", timeout_s=120)
        assert done.attempt == 2
        assert [(e["type"], e["node"]) for e in done.errors] == [("NodeLost", "doomed")]


async def _not_alive(pid: otp.Pid) -> bool:
    return not otp.is_alive(pid)


async def test_a_live_nodes_jobs_are_never_rescued(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    release = asyncio.Event()

    @registry.worker(name="blocks")
    async def blocks(job: jobs.Job) -> None:
        await release.wait()

    async with (
        backend.databases(2) as (first, second),
        running(first, registry, node="busy", heartbeat_interval_s=2, rescue_after_s=5),
        running(second, registry, node="other", heartbeat_interval_s=2, rescue_after_s=5),
    ):
        job = await jobs.enqueue(first, blocks, {})
        await wait_for_state(first, job.id, "executing")
        await asyncio.sleep(120)  # 48 rounds of two lifelines, this node's own among them
        stored = await jobs.get_job(first, job.id)
        assert stored is not None
        assert (stored.state, stored.attempt, stored.errors) == ("executing", 1, [])
        release.set()
        await wait_for_state(first, job.id, "completed")


async def test_two_lifelines_rescue_each_job_once(backend: Backend) -> None:
    async with backend.databases(2) as (first, second):
        now = otp.current_node().clock.now()
        await _beat(first, "ghost", now - timedelta(seconds=300))
        ids = await _executing_on(first, "ghost", now - timedelta(seconds=300), count=30)
        with otp.telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
            async with (
                running(first, jobs.WorkerRegistry(), node="a", queues={}),
                running(second, jobs.WorkerRegistry(), node="b", queues={}),
            ):
                await eventually(lambda: _all_available(first, ids), "all rescued", timeout_s=120)
        rescues = [s for s in statements if s.metadata["statement"] == "jobs.rescue"]
        assert sum(s.measurements["rows"] for s in rescues) == 30
        for job_id in ids:
            job = await jobs.get_job(first, job_id)
            assert job is not None
            assert [e["type"] for e in job.errors] == ["NodeLost"]


async def _all_available(database: db.Database, ids: list[int]) -> bool:
    return await _states(database, ids) == ["available"] * len(ids)


async def test_an_outage_is_waited_out_without_restarts(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async with backend.broken_database() as (database, outage):
        now = otp.current_node().clock.now()
        [job_id] = await _executing_on(database, "ghost", now - timedelta(seconds=600))
        async with running(
            database, jobs.WorkerRegistry(), queues={}, heartbeat_interval_s=1, rescue_after_s=4
        ) as node:
            lifeline = otp.resolve(otp.Via(node.names, "lifeline"))
            await wait_for_state(database, job_id, "available")
            await database.execute(
                f"UPDATE {jobs.TABLE} SET state = 'executing' WHERE id = $1", job_id
            )
            async with outage:
                await asyncio.sleep(20)
            await wait_for_state(database, job_id, "available", timeout_s=60)
            assert otp.resolve(otp.Via(node.names, "lifeline")) == lifeline
        failures = [r for r in caplog.records if r.getMessage().startswith("jobs lifeline: ")]
        assert len([r for r in failures if "trying again" in r.getMessage()]) >= 3
        assert all(r.levelno == logging.WARNING for r in failures)


async def _left_by_a_dead_run(
    database: db.Database, queue: str, attempted_ago_s: float, *, max_attempts: int
) -> int:
    """A job that the dead 'web-1' was running (attempt 1), and 'web-1''s last beat."""
    now = otp.current_node().clock.now()
    job = await jobs.enqueue(database, "w", {}, queue=queue, max_attempts=max_attempts)
    at = now - timedelta(seconds=attempted_ago_s)
    await database.execute(
        f"UPDATE {jobs.TABLE} SET state = 'executing', attempt = 1, attempted_at = $2, "
        "attempted_by = 'web-1' WHERE id = $1",
        job.id,
        at,
    )
    await engine_for(database).beat(database, "web-1", at, at, "{}")
    return job.id


async def test_a_dead_runs_job_in_a_queue_its_name_no_longer_runs_is_rescued(
    backend: Backend,
) -> None:
    # web-1 ran "mail" and was SIGKILLed; redeployed under its name without "mail", its row
    # beats again with a newer started_at: the job its name fetched before is a dead run's.
    registry = jobs.WorkerRegistry()
    async with backend.databases(2) as (first, second):
        job_id = await _left_by_a_dead_run(first, "mail", 120, max_attempts=3)
        async with (
            running(first, registry, node="web-1", queues={"default": 1}, rescue_after_s=60),
            running(second, registry, node="web-2", queues={}, rescue_after_s=60),
        ):
            job = await wait_for_state(first, job_id, "available", "discarded", timeout_s=600)
        assert job.state == "available"


async def test_a_job_that_killed_its_node_is_charged_when_the_node_comes_back_by_name(
    backend: Backend,
) -> None:
    # web-1 died running a job on its last attempt; restarted under its name, its producer
    # must not put the job back with the attempt given back (a job that kills its node every
    # time would loop for ever): the lifeline charges the attempt and discards it.
    registry = jobs.WorkerRegistry()
    runs: list[int] = []

    @registry.worker(name="w")
    async def w(job: jobs.Job) -> None:
        runs.append(job.attempt)

    async with backend.database() as database:
        job_id = await _left_by_a_dead_run(database, "default", 5, max_attempts=1)
        async with running(database, registry, node="web-1", queues={"default": 1}):
            job = await wait_for_state(database, job_id, "completed", "discarded", timeout_s=300)
        assert runs == []  # its one attempt was spent when it killed the node
        assert job.state == "discarded"
        assert [e["type"] for e in job.errors] == ["NodeLost"]
