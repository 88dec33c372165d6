"""The notifier: signals through the database reach every node - cancel a job wherever it
runs, pause, resume and scale a queue everywhere - and bad signals change nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from job_backends import Backend, eventually, running

from trunkline import jobs, otp


def waiting_worker(registry: jobs.WorkerRegistry, started: asyncio.Event) -> jobs.Worker:
    @registry.worker(name="waits")
    async def waits(job: jobs.Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    return waits


async def test_cancel_job_stops_the_job_on_the_node_that_runs_it(backend: Backend) -> None:
    registry, started = jobs.WorkerRegistry(), asyncio.Event()
    waits = waiting_worker(registry, started)
    async with backend.database() as database, running(database, registry) as node:
        job = await jobs.enqueue(database, waits, {})
        await started.wait()
        [(pid, _)] = node.running.lookup(job.id)
        # Not through the node: through the database, as another node (or the CLI) would.
        cancelled = await jobs.cancel_job(database, job.id)
        assert cancelled is not None
        assert cancelled.state == "cancelled"
        await eventually(lambda: _dead(pid), "the job's process ends")
        assert (await node.queue_info("default")).running == 0


async def test_a_cancel_signal_for_a_job_not_cancelled_here_is_ignored(backend: Backend) -> None:
    registry, started = jobs.WorkerRegistry(), asyncio.Event()
    waits = waiting_worker(registry, started)
    async with backend.database() as database, running(database, registry) as node:
        job = await jobs.enqueue(database, waits, {})
        await started.wait()
        [(pid, _)] = node.running.lookup(job.id)
        # Another system's job with the same id, on the same server (channels are shared).
        await database.notify(jobs.SIGNAL_CHANNEL, json.dumps({"action": "cancel", "id": job.id}))
        await asyncio.sleep(2)
        assert otp.is_alive(pid)
        assert (await jobs.get_job(database, job.id)).state == "executing"  # type: ignore[union-attr]


async def test_pause_resume_and_scale_reach_every_node(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with (
        backend.database() as database,
        running(database, registry, node="a", queues={"mail": 2}) as a,
        running(database, registry, node="b", queues={"mail": 2}) as b,
    ):
        await a.pause("mail")
        assert (await a.queue_info("mail")).paused  # at once where it was asked
        await eventually(lambda: _paused(b, True), "b pauses")
        await b.scale("mail", 7)
        await eventually(lambda: _limit(a, 7), "a scales")
        await a.resume("mail")
        await eventually(lambda: _paused(b, False), "b resumes")
        await a.pause("mail", local_only=True)
        await asyncio.sleep(2)
        assert not (await b.queue_info("mail")).paused


async def test_a_node_without_the_queue_still_signals_the_others(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with (
        backend.database() as database,
        running(database, registry, node="worker", queues={"mail": 2}) as worker,
        running(database, registry, node="web", queues={}) as web,
    ):
        await web.pause("mail")
        await eventually(lambda: _paused(worker, True), "the worker pauses")
        with pytest.raises(jobs.QueueNotRunning, match="'mail' does not run on node 'web'"):
            await web.pause("mail", local_only=True)
        with pytest.raises(jobs.QueueNotRunning):
            await web.queue_info("mail")


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        '{"no": "action"}',
        '{"action": "explode"}',
        '{"action": "cancel", "id": "seven"}',
        '{"action": "scale", "queue": "default", "limit": "lots"}',
        '{"action": "scale", "queue": "default", "limit": 0}',
        '{"action": "pause"}',
    ],
)
async def test_malformed_signals_are_logged_and_change_nothing(
    backend: Backend, payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database, running(database, registry) as node:
        notifier = otp.resolve(otp.Via(node.names, "notifier"))
        await database.notify(jobs.SIGNAL_CHANNEL, payload)
        await eventually(lambda: _logged(caplog, "ignored"), "the signal is ignored")
        info = await node.queue_info("default")
        assert (info.paused, info.limit) == (False, 10)
        assert otp.resolve(otp.Via(node.names, "notifier")) is notifier


async def _dead(pid: otp.Pid) -> bool:
    return not otp.is_alive(pid)


async def _paused(node: jobs.Jobs, paused: bool) -> bool:
    return (await node.queue_info("mail")).paused is paused


async def _limit(node: jobs.Jobs, limit: int) -> bool:
    return (await node.queue_info("mail")).limit == limit


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text
