"""Workers: functions or classes, named, with the defaults of their jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from trunkline import jobs


@jobs.worker
async def plain(job: jobs.Job) -> str:
    return f"plain {job.args}"


@jobs.worker(
    name="mailer.send", queue="mail", max_attempts=5, priority=3, timeout_s=30, tags=["mail"]
)
def send(job: jobs.Job) -> None:
    """Sends mail."""


class Resize(jobs.Worker):
    queue = "media"
    unique = jobs.Unique(period_s=600)

    async def perform(self, job: jobs.Job) -> Any:
        return job.args


def test_a_function_worker_is_named_after_its_module_and_function() -> None:
    assert plain.name == f"{__name__}.plain"
    assert (plain.queue, plain.max_attempts, plain.priority, plain.timeout_s) == (
        "default",
        20,
        0,
        None,
    )
    assert plain.is_async


def test_options_and_a_chosen_name() -> None:
    assert send.name == "mailer.send"
    assert (send.queue, send.max_attempts, send.priority, send.timeout_s) == ("mail", 5, 3, 30.0)
    assert tuple(send.tags) == ("mail",)
    assert not send.is_async  # runs in a thread
    assert send.__doc__ == "Sends mail."


async def test_a_function_worker_calls_its_function() -> None:
    job = jobs.Job(1, plain.name, "default", {"n": 1}, "executing", 0, 1, 20, {}, [], [], _T, _T)
    assert await plain(job) == "plain {'n': 1}"
    assert await plain.perform(job) == "plain {'n': 1}"


def test_a_class_worker_takes_its_class_attributes_and_instance_overrides() -> None:
    default = Resize()
    assert default.name == f"{__name__}.Resize"
    assert (default.queue, default.unique) == ("media", jobs.Unique(period_s=600))
    fast = Resize(name="resize.fast", queue="fast", priority=1, unique=None)
    assert (fast.name, fast.queue, fast.priority, fast.unique) == ("resize.fast", "fast", 1, None)
    assert default.queue == "media"  # untouched


def test_new_jobs_take_the_worker_defaults_and_overrides() -> None:
    job = send.new({"to": "ada"})
    assert (job.worker, job.queue, job.priority, job.max_attempts) == ("mailer.send", "mail", 3, 5)
    assert tuple(job.tags) == ("mail",)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    other = send.new(
        {"to": "bob"}, queue="bulk", priority=9, max_attempts=1, scheduled_at=at, tags=[]
    )
    assert (other.queue, other.priority, other.max_attempts, other.scheduled_at) == (
        "bulk",
        9,
        1,
        at,
    )
    assert Resize().new({"key": "a"}).unique_key is not None
    assert Resize().new({"key": "a"}, unique=None).unique_key is None


def test_backoff_comes_from_the_option_or_the_method() -> None:
    job = jobs.Job(1, "w", "default", {}, "executing", 0, 3, 20, {}, [], [], _T, _T)

    class Linear(jobs.Worker):
        def backoff(self, job: jobs.Job) -> float:
            return 10.0 * job.attempt

    assert Linear().backoff(job) == 30.0
    assert jobs.worker(backoff=lambda job: 7.0)(plain.function).backoff(job) == 7.0
    assert 23 <= plain.backoff(job) < 23 * 1.1  # the default: 15 + 2**3, plus jitter


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": ""}, "queue must be a string"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"priority": 12}, "priority must be an integer from 0"),
        ({"timeout_s": 0}, "timeout_s must be None or seconds > 0"),
        ({"timeout_s": "5"}, "timeout_s must be None or seconds > 0"),
        ({"unique": {"period_s": 5}}, "unique must be a Unique"),
        ({"tags": "mail"}, "tags must be a list of strings"),
        ({"backoff": 5}, "backoff must be a function of the job"),
    ],
)
def test_invalid_options_fail_where_the_worker_is_defined(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(jobs.InvalidJob, match=message):
        jobs.worker(**options)  # type: ignore[call-overload]
    with pytest.raises(jobs.InvalidJob, match=message):
        Resize(**options)  # type: ignore[arg-type]


def test_a_worker_without_perform_says_so() -> None:
    class Empty(jobs.Worker):
        pass

    with pytest.raises(NotImplementedError, match="must define perform"):
        Empty().perform(None)  # type: ignore[arg-type]


_T = datetime(2026, 1, 1, tzinfo=UTC)
