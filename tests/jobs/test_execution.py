"""One attempt of a job: what comes of it, its error entry, its timeout, its telemetry. No
database: execute() returns the outcome that the queue writes."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from trunkline import jobs, otp
from trunkline.jobs.execution import Outcome, execute
from trunkline.otp import MockClock, telemetry

NODE = "node-a"


def job_of(
    worker: jobs.Worker | str, *, attempt: int = 1, max_attempts: int = 20, args: Any = None
) -> jobs.Job:
    now = otp.current_node().clock.now()
    name = worker if isinstance(worker, str) else worker.name
    return jobs.Job(
        id=7,
        worker=name,
        queue="default",
        args={} if args is None else args,
        state="executing",
        priority=0,
        attempt=attempt,
        max_attempts=max_attempts,
        meta={},
        tags=["t"],
        errors=[],
        inserted_at=now - timedelta(seconds=3),
        scheduled_at=now - timedelta(seconds=2),
        attempted_at=now,
        attempted_by=NODE,
    )


async def run(worker: jobs.Worker, **job: Any) -> Outcome:
    return await execute(job_of(worker, **job), worker, NODE)


async def test_a_result_completes_the_job() -> None:
    outcome = await run(jobs.worker(lambda_async(42)))
    assert (outcome.kind, outcome.result, outcome.error, outcome.scheduled_at) == (
        "completed",
        42,
        None,
        None,
    )


async def test_snooze_schedules_it_again(clock: MockClock) -> None:
    outcome = await run(jobs.worker(lambda_async(jobs.Snooze(30))))
    assert outcome.kind == "snoozed"
    assert outcome.scheduled_at == clock.now() + timedelta(seconds=30)
    assert outcome.error is None


@pytest.mark.parametrize(
    ("result", "kind"), [(jobs.Discard("spam"), "discarded"), (jobs.Cancel("gone"), "cancelled")]
)
async def test_discard_and_cancel_record_their_reason(result: Any, kind: str) -> None:
    outcome = await run(jobs.worker(lambda_async(result)))
    assert outcome.kind == kind
    entry = json.loads(outcome.error or "")
    assert (entry["type"], entry["message"], entry["attempt"], entry["node"]) == (
        type(result).__name__,
        result.reason,
        1,
        NODE,
    )


async def test_an_exception_is_a_failed_attempt_retried_after_the_backoff(clock: MockClock) -> None:
    @jobs.worker(backoff=lambda job: 12.5 * job.attempt)
    async def fails(job: jobs.Job) -> None:
        raise ValueError(f"no such user: {job.args['user']}")

    outcome = await run(fails, attempt=2, args={"user": "ada"})
    assert outcome.kind == "retryable"
    assert outcome.scheduled_at == clock.now() + timedelta(seconds=25)
    assert isinstance(outcome.exception, ValueError)
    entry = json.loads(outcome.error or "")
    assert entry["attempt"] == 2
    assert entry["at"] == clock.now().isoformat()
    assert entry["node"] == NODE
    assert entry["type"] == "ValueError"
    assert entry["message"] == "no such user: ada"
    assert "raise ValueError" in entry["traceback"]
    assert "Traceback (most recent call last)" in entry["traceback"]


async def test_the_last_attempt_that_fails_discards_the_job() -> None:
    @jobs.worker
    async def fails(job: jobs.Job) -> None:
        raise RuntimeError("still broken")

    outcome = await run(fails, attempt=3, max_attempts=3)
    assert outcome.kind == "discarded"
    assert json.loads(outcome.error or "")["message"] == "still broken"


async def test_errors_of_other_modules_are_named_with_their_module() -> None:
    @jobs.worker
    async def fails(job: jobs.Job) -> None:
        raise json.JSONDecodeError("bad", "x", 0)

    entry = json.loads((await run(fails)).error or "")
    assert entry["type"] == "json.decoder.JSONDecodeError"


async def test_a_failing_backoff_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture, clock: MockClock
) -> None:
    @jobs.worker(backoff=lambda job: 1 / 0)
    async def fails(job: jobs.Job) -> None:
        raise RuntimeError("boom")

    outcome = await run(fails)
    assert outcome.kind == "retryable"
    assert outcome.scheduled_at is not None
    delay_s = (outcome.scheduled_at - clock.now()).total_seconds()
    assert 17 <= delay_s < 17 * 1.1  # attempt 1 of the default
    assert "backoff failed for job 7" in caplog.text


async def test_a_job_past_its_timeout_is_cancelled_and_fails_the_attempt(clock: MockClock) -> None:
    stopped = []

    @jobs.worker(timeout_s=5)
    async def slow(job: jobs.Job) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(clock.monotonic())
            raise

    started = clock.monotonic()
    outcome = await run(slow)
    assert stopped == [started + 5]
    assert outcome.kind == "retryable"
    assert isinstance(outcome.exception, jobs.JobTimeout)
    assert "ran past its timeout of 5s" in json.loads(outcome.error or "")["message"]


async def test_a_timeout_error_of_the_worker_itself_is_not_the_job_timeout() -> None:
    @jobs.worker(timeout_s=5)
    async def own(job: jobs.Job) -> None:
        raise TimeoutError("the SMTP server did not answer")

    outcome = await run(own)
    assert type(outcome.exception) is TimeoutError
    assert json.loads(outcome.error or "")["type"] == "TimeoutError"


async def test_an_unknown_worker_discards_the_job_with_a_clear_error() -> None:
    outcome = await execute(job_of("gone.worker"), None, NODE)
    assert outcome.kind == "discarded"
    entry = json.loads(outcome.error or "")
    assert entry["type"] == "trunkline.jobs.exceptions.UnknownWorker"
    assert "no worker named 'gone.worker' is registered on node 'node-a'" in entry["message"]


async def test_a_plain_function_runs_in_a_thread() -> None:
    @jobs.worker
    def blocking(job: jobs.Job) -> str:
        return threading.current_thread().name

    outcome = await run(blocking)
    assert outcome.kind == "completed"
    assert outcome.result != threading.current_thread().name


async def test_telemetry_spans_each_attempt(clock: MockClock) -> None:
    @jobs.worker
    async def takes_a_while(job: jobs.Job) -> str:
        await asyncio.sleep(1.5)
        return "done"

    events = [(*jobs.JOB_EVENT, end) for end in ("start", "stop", "exception")]
    with telemetry.capture(events) as seen:
        job = job_of(takes_a_while)
        await execute(job, takes_a_while, NODE)
    [start, stop] = seen
    assert start.event == (*jobs.JOB_EVENT, "start")
    assert start.measurements["monotonic_time"] == clock.monotonic() - 1.5
    assert stop.measurements["duration"] == 1.5
    assert stop.measurements["queue_time"] == 2.0  # attempted 2 s after it was due
    for key, value in {
        "job": job,
        "id": 7,
        "queue": "default",
        "worker": takes_a_while.name,
        "attempt": 1,
        "max_attempts": 20,
        "tags": ["t"],
        "node": NODE,
    }.items():
        assert start.metadata[key] == value
        assert stop.metadata[key] == value
    assert (stop.metadata["state"], stop.metadata["result"]) == ("completed", "done")
    assert start.metadata["telemetry_span_context"] == stop.metadata["telemetry_span_context"]


async def test_telemetry_reports_a_failed_attempt_as_an_exception() -> None:
    @jobs.worker
    async def fails(job: jobs.Job) -> None:
        raise KeyError("user")

    with telemetry.capture([(*jobs.JOB_EVENT, "stop"), (*jobs.JOB_EVENT, "exception")]) as seen:
        outcome = await run(fails)
    [exception] = seen
    assert exception.event == (*jobs.JOB_EVENT, "exception")
    assert exception.metadata["kind"] == "error"
    assert exception.metadata["reason"] is outcome.exception
    assert exception.metadata["state"] == "retryable"
    assert any(frame.name == "fails" for frame in exception.metadata["stacktrace"])


async def test_telemetry_reports_a_stopped_process_as_an_exit() -> None:
    started = asyncio.Event()

    @jobs.worker
    async def forever(job: jobs.Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    with telemetry.capture([(*jobs.JOB_EVENT, "exception")]) as seen:
        pid = otp.spawn(execute, job_of(forever), forever, NODE)
        await started.wait()
        otp.exit(pid, ("shutdown", "cancelled"))
        await asyncio.sleep(0)
    [exit] = seen
    assert (exit.metadata["kind"], exit.metadata["reason"]) == ("exit", ("shutdown", "cancelled"))
    assert exit.metadata["state"] is None


def lambda_async(value: Any) -> Any:
    async def perform(job: jobs.Job) -> Any:
        return value

    return perform
