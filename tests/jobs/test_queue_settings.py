"""Queue settings stored for every node (``trunkline_job_queues``): pause, resume and scale
last across restarts and reach running nodes from any process within a poll, on SQLite too;
``local_only`` changes stay in memory; bad input stores nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from job_backends import Backend, eventually, running, wait_for_state

from trunkline import jobs
from trunkline.otp import MockClock


def _mail_worker(registry: jobs.WorkerRegistry) -> jobs.Worker:
    @registry.worker(queue="mail", name="send")
    async def send(job: jobs.Job) -> None:
        return None

    return send


async def test_a_pause_is_stored_and_honoured_by_a_queue_started_afterwards(
    backend: Backend,
) -> None:
    registry = jobs.WorkerRegistry()
    send = _mail_worker(registry)
    async with backend.database() as database:
        settings = await jobs.pause_queue(database, "mail")  # no node runs
        assert (settings.queue, settings.paused, settings.limit) == ("mail", True, None)
        assert settings.updated_at is not None
        job = await jobs.enqueue(database, send, {})
        async with running(database, registry, queues={"mail": 2}) as node:
            info = await node.queue_info("mail")
            assert (info.paused, info.limit) == (True, 2)
            await asyncio.sleep(5)
            assert (await wait_for_state(database, job.id, "available")).attempt == 0
            await jobs.resume_queue(database, "mail")
            await wait_for_state(database, job.id, "completed")
            assert not (await node.queue_info("mail")).paused
        assert (await jobs.queue_settings(database))["mail"].paused is False


@pytest.mark.parametrize("poll_interval_s", [1.0, 5.0])
async def test_a_change_from_another_connection_reaches_a_running_node_within_a_poll(
    backend: Backend, clock: MockClock, poll_interval_s: float
) -> None:
    # The other connection is what a command line in another process is: on SQLite no
    # notification reaches the node, only its poll does.
    registry = jobs.WorkerRegistry()
    send = _mail_worker(registry)
    async with (
        backend.databases(2) as (database, other),
        running(database, registry, queues={"mail": 2}, poll_interval_s=poll_interval_s) as node,
    ):
        for change, check in [
            (jobs.pause_queue(other, "mail"), lambda info: info.paused),
            (jobs.scale_queue(other, "mail", 7), lambda info: info.limit == 7),
        ]:
            started = clock.monotonic()
            await change

            async def applied(check: object = check) -> bool:
                return bool(check(await node.queue_info("mail")))  # type: ignore[operator]

            await eventually(applied, "the node applies the change")
            assert clock.monotonic() - started <= poll_interval_s + 0.5
        job = await jobs.enqueue(database, send, {})
        await asyncio.sleep(poll_interval_s * 3)
        assert (await wait_for_state(database, job.id, "available")).attempt == 0
        await jobs.resume_queue(other, "mail")
        await wait_for_state(database, job.id, "completed")


async def test_pause_and_scale_of_a_node_are_stored_and_survive_its_restart(
    backend: Backend,
) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database:
        async with running(database, registry, queues={"mail": 10, "other": 10}) as node:
            await node.pause("mail")
            await node.scale("mail", 3)
            await node.pause("other", local_only=True)  # this node's, in memory only
        stored = await jobs.queue_settings(database)
        assert list(stored) == ["mail"]
        assert (stored["mail"].paused, stored["mail"].limit) == (True, 3)
        async with running(database, registry, queues={"mail": 10, "other": 10}) as node:
            mail, other = await node.queue_info("mail"), await node.queue_info("other")
            assert (mail.paused, mail.limit) == (True, 3)
            assert (other.paused, other.limit) == (False, 10)


async def test_a_local_change_lasts_until_the_stored_settings_change(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with (
        backend.databases(2) as (database, other),
        running(database, registry, queues={"mail": 2}) as node,
    ):
        await node.pause("mail")
        await node.resume("mail", local_only=True)
        await asyncio.sleep(5)  # several polls: the stored pause is not applied again
        assert not (await node.queue_info("mail")).paused
        await jobs.scale_queue(other, "mail", 4)

        async def scaled() -> bool:
            return (await node.queue_info("mail")).limit == 4

        await eventually(scaled, "the node scales")
        # Only what changed is applied: the pause did not.
        assert not (await node.queue_info("mail")).paused


async def test_a_queue_no_node_runs_may_be_given_settings(backend: Backend) -> None:
    async with backend.database() as database:
        await jobs.scale_queue(database, "later", 5)
        settings = await jobs.resume_queue(database, "later")
        assert (settings.paused, settings.limit) == (False, 5)


async def test_settings_written_in_a_transaction_exist_only_if_it_commits(
    backend: Backend,
) -> None:
    async with backend.database() as database:

        async def pause_then_fail() -> None:
            async with database.transaction() as tx:
                await jobs.pause_queue(tx, "mail")
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            await pause_then_fail()
        assert await jobs.queue_settings(database) == {}
        async with database.transaction() as tx:
            await jobs.pause_queue(tx, "mail")
        assert (await jobs.queue_settings(database))["mail"].paused


@pytest.mark.parametrize("limit", [0, -1, 10_001, 2.5, "7", True, None])
async def test_an_invalid_limit_stores_nothing(backend: Backend, limit: object) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database, running(database, registry) as node:
        with pytest.raises(ValueError, match="the limit must be an integer from 1 to 10000"):
            await jobs.scale_queue(database, "default", limit)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="the limit must be an integer"):
            await node.scale("default", limit)  # type: ignore[arg-type]
        assert await jobs.queue_settings(database) == {}
        assert (await node.queue_info("default")).limit == 10


@pytest.mark.parametrize("queue", ["", "q" * 256, 7, None])
async def test_an_invalid_queue_name_stores_nothing(backend: Backend, queue: object) -> None:
    async with backend.database() as database:
        for change in (jobs.pause_queue, jobs.resume_queue):
            with pytest.raises(jobs.InvalidJob, match="queue must be a string"):
                await change(database, queue)  # type: ignore[arg-type]
        with pytest.raises(jobs.InvalidJob, match="queue must be a string"):
            await jobs.scale_queue(database, queue, 3)  # type: ignore[arg-type]
        assert await jobs.queue_settings(database) == {}


async def test_a_stored_limit_out_of_range_is_logged_and_ignored(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database:
        await database.execute(
            f"INSERT INTO {jobs.QUEUES_TABLE} (queue, paused, queue_limit) VALUES ($1, $2, $3)",
            "default",
            False,
            50_000,
        )
        async with running(database, registry) as node:
            assert (await node.queue_info("default")).limit == 10
        assert "ignored a stored limit of 50000" in caplog.text


async def test_a_settings_row_that_does_not_read_leaves_the_queue_running(
    tmp_path: Path,
) -> None:
    # On SQLite any text fits a TIMESTAMPTZ column: a row written by hand may not read.
    backend = Backend("sqlite", tmp_path)
    registry = jobs.WorkerRegistry()

    @registry.worker(name="w")
    async def w(job: jobs.Job) -> None:
        return None

    async with backend.database() as database:
        await jobs.pause_queue(database, "default")
        await jobs.resume_queue(database, "default")
        await database.execute(f"UPDATE {jobs.QUEUES_TABLE} SET updated_at = 'yesterday'")
        job = await jobs.enqueue(database, w, {})
        async with running(database, registry):
            await wait_for_state(database, job.id, "completed", timeout_s=30)
