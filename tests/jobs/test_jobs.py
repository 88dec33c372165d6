"""A node's job queue end to end: the state machine of a job through a running tree, on both
databases; the node's settings; the tree under a supervisor of the caller's."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest
from job_backends import Backend, Recorder, running, wait_for_state

from trunkline import db, jobs, otp
from trunkline.otp import MockClock


async def test_a_job_goes_scheduled_available_executing_completed(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()
    seen: list[jobs.Job] = []

    @registry.worker(queue="mail")
    async def send(job: jobs.Job) -> str:
        seen.append(job)
        await asyncio.sleep(2)
        return "sent"

    async with backend.database() as database, running(database, registry, queues={"mail": 1}):
        enqueued_at = clock.now()
        job = await jobs.enqueue(database, send, {"to": "ada"}, in_s=10)
        assert job.state == "scheduled"
        executing = await wait_for_state(database, job.id, "executing")
        assert executing.attempted_at is not None
        assert executing.attempted_at - enqueued_at >= timedelta(seconds=10)
        done = await wait_for_state(database, job.id, "completed")
        [running_job] = seen
        assert (running_job.state, running_job.attempt, running_job.args) == (
            "executing",
            1,
            {"to": "ada"},
        )
        assert running_job.attempted_by == "test-node"
        assert done.completed_at is not None
        assert done.completed_at - done.attempted_at >= timedelta(seconds=2)  # type: ignore[operator]
        assert (done.attempt, done.errors, done.discarded_at, done.cancelled_at) == (
            1,
            [],
            None,
            None,
        )


async def test_failures_are_retried_with_backoff_then_discarded_then_retried_by_hand(
    backend: Backend,
) -> None:
    registry = jobs.WorkerRegistry()
    healthy = False

    @registry.worker(max_attempts=3, backoff=lambda job: 5.0)
    async def fragile(job: jobs.Job) -> str:
        if not healthy:
            raise ConnectionError(f"down at attempt {job.attempt}")
        return "up"

    async with backend.database() as database, running(database, registry) as node:
        job = await jobs.enqueue(database, fragile, {})
        dead = await wait_for_state(database, job.id, "discarded")
        assert dead.attempt == 3
        assert [e["message"] for e in dead.errors] == [f"down at attempt {n}" for n in (1, 2, 3)]
        assert [e["attempt"] for e in dead.errors] == [1, 2, 3]
        assert (await node.list_jobs(state="discarded")) == [dead]  # the dead letters
        healthy = True
        retried = await node.retry_job(job.id)
        assert retried is not None
        assert (retried.state, retried.max_attempts, retried.discarded_at) == ("available", 4, None)
        done = await wait_for_state(database, job.id, "completed")
        assert (done.attempt, len(done.errors)) == (4, 3)  # its history is kept


async def test_a_snoozed_job_runs_again_later_without_using_an_attempt(
    backend: Backend, clock: MockClock
) -> None:
    registry = jobs.WorkerRegistry()
    runs: list[tuple[int, float]] = []

    @registry.worker
    async def patient(job: jobs.Job) -> jobs.Snooze | None:
        runs.append((job.attempt, clock.monotonic()))
        return jobs.Snooze(20) if len(runs) < 3 else None

    async with backend.database() as database, running(database, registry, stage_interval_s=60):
        job = await jobs.enqueue(database, patient, {})
        done = await wait_for_state(database, job.id, "completed")
        assert [attempt for attempt, _ in runs] == [1, 1, 1]
        # Run again when the snooze is over (the stager is told), not at its 60 s round. The
        # margin is for the mock clock, which moves on when the database is slow to answer.
        for (_, a), (_, b) in itertools.pairwise(runs):
            assert 20 <= b - a < 25
        assert (done.attempt, done.errors) == (1, [])


async def test_discard_and_cancel_results_end_the_job(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def decides(job: jobs.Job) -> object:
        return jobs.Discard("spam") if job.args["spam"] else jobs.Cancel("user left")

    async with backend.database() as database, running(database, registry):
        spam = await jobs.enqueue(database, decides, {"spam": True})
        left = await jobs.enqueue(database, decides, {"spam": False})
        discarded = await wait_for_state(database, spam.id, "discarded")
        cancelled = await wait_for_state(database, left.id, "cancelled")
        assert [(e["type"], e["message"]) for e in discarded.errors] == [("Discard", "spam")]
        assert [(e["type"], e["message"]) for e in cancelled.errors] == [("Cancel", "user left")]
        assert discarded.discarded_at is not None
        assert cancelled.cancelled_at is not None


async def test_a_job_of_an_unknown_worker_is_discarded_at_once(backend: Backend) -> None:
    async with backend.database() as database, running(database, jobs.WorkerRegistry()):
        job = await jobs.enqueue(database, "retired.worker", {})
        discarded = await wait_for_state(database, job.id, "discarded")
        [error] = discarded.errors
        assert error["type"] == "trunkline.jobs.exceptions.UnknownWorker"
        assert (
            "no worker named 'retired.worker' is registered on node 'test-node'" in error["message"]
        )
        assert discarded.attempt == 1


async def test_the_tree_runs_under_the_callers_supervisor(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker
    async def hello(job: jobs.Job) -> str:
        return "hi"

    async with backend.database(migrate=False) as database:  # the node migrates on start
        node = jobs.Jobs(database, registry=registry, queues={"default": 2, "mail": 1})
        supervisor = await otp.Supervisor.start([node.child_spec(id="jobs")])
        [child] = await otp.which_children(supervisor)
        assert (child.id, child.type) == ("jobs", "supervisor")
        tree = await otp.supervision_tree(supervisor)
        modules = [n.module.rsplit(".", 1)[-1] for n in tree.walk()]
        for module in (
            "JobsSupervisor",
            "Notifier",
            "Stager",
            "QueueSupervisor",
            "Producer",
            "Executor",
            "Watchman",
        ):
            assert module in modules
        with Recorder() as recorder:
            await node.enqueue(hello, {})
            await recorder.wait(1)
        await otp.stop(supervisor, "shutdown")
        assert await node.queue_stats() == {
            "default": {**dict.fromkeys(jobs.STATES, 0), "completed": 1}
        }


async def test_a_failed_migration_fails_the_start(backend: Backend) -> None:
    async with backend.database(migrate=False) as database:
        await database.execute(f"CREATE TABLE {jobs.TABLE} (id BIGINT PRIMARY KEY)")
        node = jobs.Jobs(database, registry=jobs.WorkerRegistry())
        with pytest.raises(otp.StartError) as failed:
            await node.start()
        assert isinstance(failed.value.reason, db.MigrationError)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"queues": {"default": 0}}, ValueError, "the limit must be an integer from 1 to 10000"),
        ({"queues": {"default": 10_001}}, ValueError, "from 1 to 10000"),
        ({"queues": {"": 1}}, jobs.InvalidJob, "queue must be a string"),
        ({"queues": ["default"]}, TypeError, "queues must map queue names to limits"),
        ({"poll_interval_s": 0}, ValueError, "poll_interval_s must be seconds > 0"),
        ({"stage_interval_s": -1}, ValueError, "stage_interval_s must be seconds > 0"),
        ({"shutdown_grace_s": float("nan")}, ValueError, "shutdown_grace_s must be seconds >= 0"),
        ({"node": ""}, jobs.InvalidJob, "node must be a string"),
        ({"registry": {}}, TypeError, "registry must be a WorkerRegistry"),
    ],
)
async def test_invalid_settings_are_refused_naming_them(
    backend: Backend, options: dict[str, object], error: type[Exception], message: str
) -> None:
    async with backend.database() as database:
        settings: dict[str, object] = {"registry": jobs.WorkerRegistry(), **options}
        with pytest.raises(error, match=message):
            jobs.Jobs(database, **settings)  # type: ignore[arg-type]


def test_a_database_is_required() -> None:
    with pytest.raises(TypeError, match=r"database must be a trunkline\.db\.Database"):
        jobs.Jobs("sqlite:///x.db", registry=jobs.WorkerRegistry())  # type: ignore[arg-type]


async def test_each_node_has_a_name_of_its_own(backend: Backend) -> None:
    async with backend.database() as database:
        a = jobs.Jobs(database, registry=jobs.WorkerRegistry())
        b = jobs.Jobs(database, registry=jobs.WorkerRegistry())
        assert a.node != b.node
        assert jobs.Jobs(database, registry=jobs.WorkerRegistry(), node="web-1").node == "web-1"


class _Beside(otp.GenServer):
    def init(self, seen: list[str]) -> None:
        seen.append("started")


class _Plugin:
    name = "beside"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def child_spec(self, node: jobs.Jobs) -> otp.ChildSpec:
        return otp.child_spec(_Beside, self.seen, id=self.name)


async def test_plugins_run_in_the_tree(backend: Backend) -> None:
    plugin = _Plugin()
    async with backend.database() as database:
        node = jobs.Jobs(database, registry=jobs.WorkerRegistry(), queues={}, plugins=[plugin])
        sup = await node.start()
        try:
            assert plugin.seen == ["started"]
            assert "beside" in [child.id for child in await otp.which_children(sup)]
        finally:
            await otp.stop(sup)


async def test_plugins_are_checked(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database(migrate=False) as database:
        with pytest.raises(TypeError, match="plugins must be"):
            jobs.Jobs(database, registry=registry, plugins="cron")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a plugin needs"):
            jobs.Jobs(database, registry=registry, plugins=[object()])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="two plugins are named 'beside'"):
            jobs.Jobs(database, registry=registry, plugins=[_Plugin(), _Plugin()])
