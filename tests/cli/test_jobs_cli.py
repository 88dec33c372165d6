"""``trunkline jobs ...``: each command through typer's runner, its JSON checked against the
database, on SQLite and PostgreSQL; ``watch --until-drained`` while another thread drains;
the console script in a subprocess; bad input (one line, exit code 2 or 1, nothing changed).

The commands run their own event loop, so these tests are sync and on real time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from trunkline import db, jobs, otp
from trunkline.cli import app
from trunkline.jobs.testing import drain

T = TypeVar("T")


def invoke(url: str, *args: str) -> Result:
    """``trunkline <args> --database <url>``, in this process."""
    return CliRunner().invoke(app, [*args, "--database", url])


def invoke_json(url: str, *args: str) -> Any:
    result = invoke(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def on_database(url: str, action: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``action`` on the migrated database at ``url``, on an event loop of its own."""

    async def main() -> T:
        async with await db.connect(url) as database:
            await database.migrate({jobs.COMPONENT: jobs.MIGRATIONS})
            return await action(database)

    return asyncio.run(main())


def get_job(url: str, job_id: int) -> jobs.Job:
    job = on_database(url, lambda database: jobs.get_job(database, job_id))
    assert job is not None
    return job


def count_jobs(url: str) -> int:
    found = on_database(url, lambda database: jobs.list_jobs(database, limit=1000))
    return len(found)


registry = jobs.WorkerRegistry()


@registry.worker(queue="mail", name="noop")
async def noop(job: jobs.Job) -> None:
    return None


@registry.worker(queue="mail", name="fails", max_attempts=1)
async def fails(job: jobs.Job) -> None:
    raise ValueError(f"no mailbox for {job.args['to']}")


def drain_mail(url: str) -> jobs.testing.DrainResult:
    return on_database(url, lambda database: drain(database, "mail", registry=registry))


# -- each command -------------------------------------------------------------------------------


def test_enqueue_stores_the_job_as_given(url: str) -> None:
    data = invoke_json(
        url,
        "jobs",
        "enqueue",
        "billing.invoice",
        "--args",
        '{"id": 7, "lines": [1, 2]}',
        "--queue",
        "billing",
        "--priority",
        "3",
        "--max-attempts",
        "5",
        "--tag",
        "a",
        "--tag",
        "b",
    )
    job = get_job(url, data["id"])
    assert job.to_dict() == data
    assert (job.worker, job.queue, job.args, job.priority, job.max_attempts, job.tags) == (
        "billing.invoice",
        "billing",
        {"id": 7, "lines": [1, 2]},
        3,
        5,
        ["a", "b"],
    )
    assert job.state == "available"
    human = invoke(url, "jobs", "enqueue", "noop")
    assert human.exit_code == 0
    assert human.stdout.startswith(f"Enqueued job {job.id + 1} (noop) in queue 'default'")


def test_enqueue_later_in_seconds_or_at_a_time(url: str) -> None:
    before = datetime.now(UTC)
    later = get_job(url, invoke_json(url, "jobs", "enqueue", "noop", "--in", "3600")["id"])
    assert later.state == "scheduled"
    assert before + timedelta(seconds=3600) <= later.scheduled_at
    assert later.scheduled_at <= datetime.now(UTC) + timedelta(seconds=3600)
    at = get_job(
        url, invoke_json(url, "jobs", "enqueue", "noop", "--at", "2031-01-02T03:04:05+01:00")["id"]
    )
    assert at.scheduled_at == datetime(2031, 1, 2, 2, 4, 5, tzinfo=UTC)
    naive = get_job(
        url, invoke_json(url, "jobs", "enqueue", "noop", "--at", "2031-01-02T03:04:05")["id"]
    )
    assert naive.scheduled_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)  # UTC


def test_list_filters_and_orders_newest_first(url: str) -> None:
    ids = [
        invoke_json(url, "jobs", "enqueue", worker, "--queue", queue)["id"]
        for worker, queue in [("noop", "mail"), ("noop", "default"), ("other", "mail")]
    ]
    invoke_json(url, "jobs", "cancel", str(ids[0]))
    listed = invoke_json(url, "jobs", "list")
    assert [job["id"] for job in listed] == ids[::-1]
    assert [j["id"] for j in invoke_json(url, "jobs", "list", "--queue", "mail")] == [
        ids[2],
        ids[0],
    ]
    assert [j["id"] for j in invoke_json(url, "jobs", "list", "--worker", "noop")] == [
        ids[1],
        ids[0],
    ]
    assert [j["id"] for j in invoke_json(url, "jobs", "list", "--state", "cancelled")] == [ids[0]]
    assert [j["id"] for j in invoke_json(url, "jobs", "list", "--limit", "1")] == [ids[2]]
    table = invoke(url, "jobs", "list", "--queue", "mail")
    assert table.exit_code == 0
    assert "cancelled" in table.stdout
    assert "other" in table.stdout
    assert invoke(url, "jobs", "list", "--queue", "nothing").stdout.strip() == "No jobs."


def test_inspect_shows_every_field_and_errors_with_tracebacks(url: str) -> None:
    job_id = invoke_json(
        url,
        "jobs",
        "enqueue",
        "fails",
        "--queue",
        "mail",
        "--max-attempts",
        "1",
        "--args",
        '{"to": "ada"}',
    )["id"]
    assert drain_mail(url).discarded == 1
    data = invoke_json(url, "jobs", "inspect", str(job_id))
    assert data == get_job(url, job_id).to_dict()
    assert data["state"] == "discarded"
    [error] = data["errors"]
    assert error["message"] == "no mailbox for ada"
    human = invoke(url, "jobs", "inspect", str(job_id))
    assert human.exit_code == 0
    for text in (
        "discarded_at",
        "max_attempts",
        "ValueError: no mailbox for ada",
        "Traceback",
        "raise ValueError",
    ):
        assert text in human.stdout, text


def test_retry_makes_a_dead_job_available_again(url: str) -> None:
    job_id = invoke_json(
        url,
        "jobs",
        "enqueue",
        "fails",
        "--queue",
        "mail",
        "--max-attempts",
        "1",
        "--args",
        '{"to": "x"}',
    )["id"]
    drain_mail(url)
    data = invoke_json(url, "jobs", "retry", str(job_id))
    job = get_job(url, job_id)
    assert data == job.to_dict()
    assert (job.state, job.max_attempts, len(job.errors)) == ("available", 2, 1)
    assert invoke(url, "jobs", "retry", str(job_id)).stdout.strip() == f"Job {job_id} is available."


def test_cancel_cancels_a_waiting_job_and_leaves_an_ended_one(url: str) -> None:
    waiting = invoke_json(url, "jobs", "enqueue", "noop", "--in", "60")["id"]
    assert invoke_json(url, "jobs", "cancel", str(waiting))["state"] == "cancelled"
    assert get_job(url, waiting).state == "cancelled"
    done = invoke_json(url, "jobs", "enqueue", "noop", "--queue", "mail")["id"]
    drain_mail(url)
    result = invoke(url, "jobs", "cancel", str(done))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"Job {done} had ended (completed): nothing to cancel."
    assert get_job(url, done).state == "completed"


@pytest.mark.parametrize("command", ["inspect", "retry", "cancel"])
def test_a_job_that_does_not_exist_is_an_error(url: str, command: str) -> None:
    result = invoke(url, "jobs", command, "999")
    assert (result.exit_code, result.stderr, result.stdout) == (1, "Error: no job 999\n", "")


def test_pause_resume_and_scale_store_the_queue_settings(url: str) -> None:
    def stored() -> dict[str, jobs.QueueSettings]:
        return on_database(url, jobs.queue_settings)

    paused = invoke_json(url, "jobs", "pause", "mail")
    assert (paused["queue"], paused["paused"], paused["limit"]) == ("mail", True, None)
    assert stored()["mail"].paused
    assert stored()["mail"].updated_at.isoformat() == paused["updated_at"]  # type: ignore[union-attr]
    scaled = invoke_json(url, "jobs", "scale", "mail", "20")
    assert (scaled["paused"], scaled["limit"]) == (True, 20)
    assert invoke_json(url, "jobs", "resume", "mail")["paused"] is False
    assert (stored()["mail"].paused, stored()["mail"].limit) == (False, 20)
    human = invoke(url, "jobs", "pause", "reports")
    assert human.stdout.strip() == "Queue 'reports' on every node: paused, limit each node's own."


def test_stats_counts_each_queue_in_each_state(url: str) -> None:
    for _ in range(2):
        invoke_json(url, "jobs", "enqueue", "noop", "--queue", "mail")
    invoke_json(url, "jobs", "enqueue", "noop", "--in", "60")
    invoke_json(url, "jobs", "pause", "idle")
    invoke_json(url, "jobs", "scale", "mail", "4")
    data = invoke_json(url, "jobs", "stats")
    expected = on_database(url, jobs.queue_stats)
    assert {
        name: queue["states"] for name, queue in data["queues"].items() if name != "idle"
    } == expected
    assert data["queues"]["mail"]["states"]["available"] == 2
    assert data["queues"]["default"]["states"]["scheduled"] == 1
    assert (data["queues"]["mail"]["paused"], data["queues"]["mail"]["limit"]) == (False, 4)
    assert data["queues"]["idle"] == {
        "states": dict.fromkeys(jobs.STATES, 0),
        "paused": True,
        "limit": None,
    }
    table = invoke(url, "jobs", "stats").stdout
    assert all(state in table for state in jobs.STATES)
    [mail_row] = [line for line in table.splitlines() if " mail " in line]
    cells = [cell.strip() for cell in mail_row.split("│")[1:-1]]
    assert cells == ["mail", "0", "2", "0", "0", "0", "0", "0", "", "4"]


# -- watch ----------------------------------------------------------------------------------------


def _drain_after_the_first_look(url: str) -> threading.Thread:
    """A thread that drains the mail queue once the watch has counted the jobs once."""
    looked = threading.Event()

    def on_query(event: Any, measurements: Any, metadata: dict[str, Any], config: Any) -> None:
        if metadata.get("statement") == "jobs.stats":
            looked.set()

    otp.telemetry.attach("cli-watch-test", (*db.QUERY_EVENT, "stop"), on_query)

    def run() -> None:
        try:
            assert looked.wait(30)
        finally:
            otp.telemetry.detach("cli-watch-test")
        drain_mail(url)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_watch_until_drained_follows_a_queue_to_the_end(url: str) -> None:
    for _ in range(3):
        invoke_json(url, "jobs", "enqueue", "noop", "--queue", "mail")
    invoke_json(url, "jobs", "enqueue", "noop", "--in", "3600")  # later: not left to run
    thread = _drain_after_the_first_look(url)
    result = invoke(url, "jobs", "watch", "--until-drained", "--interval", "0.05", "--json")
    thread.join()
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert frames[0]["left_to_run"] == 3
    assert frames[0]["progress"] == {"mail": {"done": 0, "total": 3}}
    assert frames[-1]["left_to_run"] == 0
    assert frames[-1]["progress"] == {"mail": {"done": 3, "total": 3}}
    assert frames[-1]["queues"]["mail"]["states"]["completed"] == 3
    assert all(frame["left_to_run"] > 0 for frame in frames[:-1])


def test_watch_shows_a_progress_bar_per_draining_queue(sqlite_url: str) -> None:
    for _ in range(2):
        invoke_json(sqlite_url, "jobs", "enqueue", "noop", "--queue", "mail")
    thread = _drain_after_the_first_look(sqlite_url)
    result = invoke(sqlite_url, "jobs", "watch", "--until-drained", "--interval", "0.05")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "done since the watch began" in result.stdout
    assert "2/2" in result.stdout


def test_watch_until_drained_exits_at_once_when_nothing_is_left(sqlite_url: str) -> None:
    invoke_json(sqlite_url, "jobs", "enqueue", "noop", "--in", "3600")
    frames = invoke(sqlite_url, "jobs", "watch", "--until-drained", "--json", "--queue", "default")
    assert frames.exit_code == 0
    [frame] = [json.loads(line) for line in frames.stdout.splitlines()]
    assert (frame["left_to_run"], frame["progress"]) == (0, {})
    assert frame["queues"]["default"]["states"]["scheduled"] == 1


# -- the console script --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["module", "script"])
def test_the_console_script_and_python_m(tmp_path: Path, sqlite_url: str, command: str) -> None:
    invoke_json(sqlite_url, "jobs", "enqueue", "noop", "--queue", "mail")
    argv = (
        [sys.executable, "-m", "trunkline"]
        if command == "module"
        else [str(Path(sys.executable).parent / "trunkline")]
    )
    env = {**os.environ, "TRUNKLINE_DATABASE": sqlite_url}
    done = subprocess.run(
        [*argv, "jobs", "stats", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["queues"]["mail"]["states"]["available"] == 1
    # Default database: ./trunkline.db in the working directory.
    done = subprocess.run(
        [*argv, "jobs", "enqueue", "noop"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "TRUNKLINE_DATABASE"},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "trunkline.db").exists()


@pytest.mark.parametrize(
    "command",
    ["enqueue", "list", "inspect", "retry", "cancel", "pause", "resume", "scale", "stats", "watch"],
)
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(app, ["jobs", command, "--help"])
    assert result.exit_code == 0
    assert "Example: trunkline jobs" in result.stdout
    assert "--database" in result.stdout
    assert "--json" in result.stdout


def test_the_root_is_a_group_of_groups() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "jobs" in result.stdout


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "noop", "--args", "{nope"], "--args is not JSON"),
        (["enqueue", "noop", "--args", "NaN"], "args"),
        (["enqueue", "noop", "--priority", "12"], "priority must be an integer from 0"),
        (["enqueue", "noop", "--max-attempts", "0"], "max_attempts must be an integer >= 1"),
        (["enqueue", "noop", "--in", "5", "--at", "2030-01-01T00:00:00"], "give --in or --at"),
        (["enqueue", "noop", "--in", "-5"], "--in must be seconds >= 0"),
        (["enqueue", "noop", "--at", "tomorrow"], "--at must be an ISO-8601 time"),
        (["enqueue", ""], "worker"),
        (["list", "--state", "done"], "--state must be one of scheduled"),
        (["list", "--limit", "0"], "--limit must be 1 or more"),
        (["scale", "mail", "0"], "the limit must be an integer from 1 to 10000"),
        (["scale", "mail", "10001"], "the limit must be an integer from 1 to 10000"),
        (["pause", ""], "queue must be a string of 1 to 255 characters"),
        (["watch", "--interval", "0"], "--interval must be seconds > 0"),
    ],
)
def test_invalid_input_is_one_line_exit_2_and_changes_nothing(
    sqlite_url: str, args: list[str], message: str
) -> None:
    result = invoke(sqlite_url, "jobs", *args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: "), line
    assert message in line, line
    assert "Traceback" not in result.output
    assert count_jobs(sqlite_url) == 0
    assert on_database(sqlite_url, jobs.queue_settings) == {}


@pytest.mark.parametrize("bad_id", ["abc", "1.5"])
def test_an_id_that_is_not_an_integer_is_a_usage_error(sqlite_url: str, bad_id: str) -> None:
    result = invoke(sqlite_url, "jobs", "inspect", bad_id)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "job_id" in result.output


def test_an_invalid_url_is_a_usage_error() -> None:
    result = invoke("mysql://localhost/x", "jobs", "stats")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: invalid database URL 'mysql://localhost/x'")


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    for url in ("postgresql://postgres@127.0.0.1:1/test", f"sqlite:///{tmp_path}/no/such/dir/x.db"):
        result = invoke(url, "jobs", "stats")
        assert result.exit_code == 1, result.output
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: cannot connect to"), line
        assert "Traceback" not in result.output


# -- job data and out-of-range input ------------------------------------------------------------


def test_job_data_is_printed_as_it_is_never_as_markup(url: str) -> None:
    assert (
        invoke(url, "jobs", "enqueue", "w[/]", "--args", '{"a": "[/]", "b": "[red]x"}').exit_code
        == 0
    )
    listed = invoke(url, "jobs", "list")
    assert listed.exit_code == 0, listed.output
    assert "[red]x" in listed.stdout
    inspected = invoke(url, "jobs", "inspect", "1")
    assert inspected.exit_code == 0, inspected.output
    assert "[/]" in inspected.stdout
    assert "w[/]" in inspected.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "inspect", "99999999999999999999"],
        ["jobs", "retry", "0"],
        ["jobs", "list", "--limit", "99999999999999999999"],
        ["jobs", "enqueue", "w", "--in", "1e12"],
        ["jobs", "enqueue", "w", "--in", "1e300"],
        ["jobs", "enqueue", "w", "--at", "9999-12-31T23:59:59-01:00"],
    ],
)
def test_out_of_range_input_is_refused_with_exit_2(url: str, args: list[str]) -> None:
    result = invoke(url, *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr
    assert invoke_json(url, "jobs", "list", "--json") == []  # nothing was enqueued


def test_a_settings_row_that_does_not_read_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke(url, "jobs", "pause", "mail").exit_code == 0
    with sqlite3.connect(tmp_path / "x.db") as conn:
        conn.execute("UPDATE trunkline_job_queues SET updated_at = 'yesterday'")
    result = invoke(url, "jobs", "stats")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ")
