"""``trunkline jobs ...``: the job queue from a shell.

Each command opens the database given by ``--database`` (or ``$TRUNKLINE_DATABASE``; default
``sqlite:///./trunkline.db``), runs the ``"jobs"`` migrations if they are not applied yet,
does one thing through the public :mod:`trunkline.jobs` API, and closes it. None needs a
running node: pause, resume and scale are stored in the database, which every node reads on
its poll (see ``trunkline.jobs.queue_settings``), so they work from another process on
SQLite too.

Output is for people (rich tables) unless ``--json`` asks for JSON, one document per
command (``watch --json``: one line per refresh). Errors are one line on stderr: exit code 2
for invalid input (bad JSON, an unknown state, an invalid limit or URL), 1 for everything
else (no such job, the database unreachable). See ``docs/cli.md``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from trunkline import db, jobs

from .common import (
    DEFAULT_DATABASE,
    Database,
    Json,
    fail,
    print_json,
    run_on_database,
    shorten,
    stdout_console,
    time_text,
)

__all__ = ["DEFAULT_DATABASE", "app"]

T = TypeVar("T")

LEFT_TO_RUN: tuple[jobs.State, ...] = ("available", "executing", "retryable")
"""What ``watch`` counts as left to run; scheduled jobs (due later) are not."""

DONE: tuple[jobs.State, ...] = jobs.FINAL_STATES

app = typer.Typer(
    name="jobs",
    help="Enqueue, inspect and manage jobs, and control queues on every node.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _check_id(job_id: int) -> int:
    if not 1 <= job_id <= _MAX_ID:
        fail(f"a job id is an integer from 1 to {_MAX_ID}, not {job_id}", 2)
    return job_id


_MAX_ID = 2**63 - 1
JobId = Annotated[int, typer.Argument(help="The job's id.", show_default=False, callback=_check_id)]
QueueName = Annotated[str, typer.Argument(help="The queue's name.", show_default=False)]


# -- commands ----------------------------------------------------------------------------------


@app.command()
def enqueue(
    worker: Annotated[
        str, typer.Argument(help="The worker's name (it need not run here).", show_default=False)
    ],
    args: Annotated[str, typer.Option("--args", help="The job's arguments, as JSON.")] = "{}",
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", help="Its queue [default: default].")
    ] = None,
    priority: Annotated[
        int | None, typer.Option("--priority", "-p", help="0 (first) to 9 (last) [default: 0].")
    ] = None,
    in_s: Annotated[
        float | None, typer.Option("--in", help="Run it this many seconds from now.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Run it at this ISO-8601 time (UTC without an offset)."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Attempts before it is discarded.")
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A label; repeat for more.")
    ] = None,
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """Enqueue a job of WORKER.

    Example: trunkline jobs enqueue mail.send_welcome --args '{"to": "ada@example.com"}'
    """
    options: dict[str, Any] = {"args": _json_option("--args", args)}
    for name, value in (("queue", queue), ("priority", priority), ("max_attempts", max_attempts)):
        if value is not None:
            options[name] = value
    if tags:
        options["tags"] = tags
    if in_s is not None and at is not None:
        fail("give --in or --at, not both", 2)
    if in_s is not None:
        if not math.isfinite(in_s) or in_s < 0:
            fail(f"--in must be seconds >= 0, not {in_s}", 2)
        options["in_s"] = in_s
    if at is not None:
        options["scheduled_at"] = _parse_time(at)

    async def run(conn: db.Database) -> jobs.Job:
        return await jobs.enqueue(conn, worker, **options)

    job = _run(database, run)
    if as_json:
        print_json(job.to_dict())
    else:
        when = "" if job.state == "available" else f", due {time_text(job.scheduled_at)}"
        stdout_console().print(
            f"Enqueued job {job.id} ({job.worker}) in queue {job.queue!r}: {job.state}{when}"
        )


@app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option("--state", "-s", help=f"One of: {', '.join(jobs.STATES)}.")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    worker: Annotated[str | None, typer.Option("--worker", "-w", help="Only this worker.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many (1 to 10000).")
    ] = 20,
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """List jobs, newest first.

    Example: trunkline jobs list --state discarded --queue mail
    """
    if state is not None and state not in jobs.STATES:
        fail(f"--state must be one of {', '.join(jobs.STATES)}, not {state!r}", 2)
    if not 1 <= limit <= 10_000:
        fail(f"--limit must be 1 or more, and at most 10000, not {limit}", 2)

    async def run(conn: db.Database) -> list[jobs.Job]:
        return await jobs.list_jobs(conn, state=state, queue=queue, worker=worker, limit=limit)

    found = _run(database, run)
    if as_json:
        print_json([job.to_dict() for job in found])
        return
    table = Table("id", "state", "queue", "worker", "attempt", "priority", "scheduled", "args")
    for job in found:
        table.add_row(
            str(job.id),
            job.state,
            job.queue,
            job.worker,
            f"{job.attempt}/{job.max_attempts}",
            str(job.priority),
            time_text(job.scheduled_at),
            shorten(json.dumps(job.args)),
        )
    stdout_console().print(table if found else "No jobs.")


@app.command()
def inspect(job_id: JobId, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Show every field of a job, and its errors with their tracebacks.

    Example: trunkline jobs inspect 42
    """
    job = _run(database, lambda conn: jobs.get_job(conn, job_id))
    if job is None:
        fail(f"no job {job_id}", 1)
    if as_json:
        print_json(job.to_dict())
        return
    table = Table(show_header=False, box=None)
    for name, value in job.to_dict().items():
        if name != "errors":
            table.add_row(name, value if isinstance(value, str) else json.dumps(value))
    stdout_console().print(table)
    for error in job.errors:
        stdout_console().rule(
            f"attempt {error.get('attempt')} failed at {error.get('at')} on {error.get('node')}"
        )
        stdout_console().print(
            f"{error.get('type')}: {error.get('message')}", markup=False, highlight=False
        )
        if error.get("traceback"):
            stdout_console().print(error["traceback"], markup=False, highlight=False)


@app.command()
def retry(job_id: JobId, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Run a job again now (discarded, cancelled, completed, retryable or scheduled).

    Example: trunkline jobs retry 42
    """
    job = _run(database, lambda conn: jobs.retry_job(conn, job_id))
    if job is None:
        fail(f"no job {job_id}", 1)
    if as_json:
        print_json(job.to_dict())
    elif job.state == "executing":
        stdout_console().print(f"Job {job_id} is executing: nothing to retry.")
    else:
        stdout_console().print(f"Job {job_id} is {job.state}.")


@app.command()
def cancel(job_id: JobId, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Cancel a job that has not ended; a running one is stopped on its node.

    Example: trunkline jobs cancel 42
    """
    job = _run(database, lambda conn: jobs.cancel_job(conn, job_id))
    if job is None:
        fail(f"no job {job_id}", 1)
    if as_json:
        print_json(job.to_dict())
    elif job.state == "cancelled":
        stdout_console().print(f"Job {job_id} is cancelled.")
    else:
        stdout_console().print(f"Job {job_id} had ended ({job.state}): nothing to cancel.")


@app.command()
def pause(queue: QueueName, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Stop every node fetching jobs of QUEUE (running jobs go on), until resumed.

    Example: trunkline jobs pause mail
    """
    _settings(_run(database, lambda conn: jobs.pause_queue(conn, queue)), as_json)


@app.command()
def resume(queue: QueueName, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Let every node fetch jobs of QUEUE again.

    Example: trunkline jobs resume mail
    """
    _settings(_run(database, lambda conn: jobs.resume_queue(conn, queue)), as_json)


@app.command()
def scale(
    queue: QueueName,
    limit: Annotated[int, typer.Argument(help="The most jobs at once on each node (1 to 10000).")],
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """Run at most LIMIT jobs of QUEUE at once on each node.

    Example: trunkline jobs scale mail 20
    """
    _settings(_run(database, lambda conn: jobs.scale_queue(conn, queue, limit)), as_json)


@app.command()
def stats(database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Count the jobs of each queue in each state; show paused queues and stored limits.

    Example: trunkline jobs stats
    """
    snapshot = _run(database, _snapshot)
    if as_json:
        print_json(snapshot.to_json())
    else:
        stdout_console().print(snapshot.table())


@app.command()
def watch(
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Only this queue; repeat for more.")
    ] = None,
    interval_s: Annotated[
        float, typer.Option("--interval", "-i", help="Seconds between refreshes.")
    ] = 1.0,
    until_drained: Annotated[
        bool,
        typer.Option(
            "--until-drained", help="Exit once no job is left to run (scheduled ones aside)."
        ),
    ] = False,
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """Watch the queues live: counts per state, and a progress bar per queue that drains.

    A queue's bar shows the jobs that ended since the watch started out of those and the
    ones left to run (available, executing, retryable).

    Example: trunkline jobs watch --queue mail --until-drained
    """
    if not math.isfinite(interval_s) or interval_s <= 0:
        fail(f"--interval must be seconds > 0, not {interval_s}", 2)
    only = set(queue) if queue else None

    async def run(conn: db.Database) -> None:
        start = await _snapshot(conn, only)
        if as_json:
            now = start
            while True:
                print_json(now.to_json(since=start))
                if until_drained and now.left_to_run() == 0:
                    return
                await asyncio.sleep(interval_s)
                now = await _snapshot(conn, only)
        with Live(start.view(start), console=stdout_console(), auto_refresh=False) as live:
            now = start
            while not (until_drained and now.left_to_run() == 0):
                await asyncio.sleep(interval_s)
                now = await _snapshot(conn, only)
                live.update(now.view(start), refresh=True)

    _run(database, run)


# -- what the commands show ---------------------------------------------------------------------


class Snapshot:
    """The queues' counts per state, and their stored settings, at one moment."""

    def __init__(
        self,
        counts: dict[str, dict[jobs.State, int]],
        settings: dict[str, jobs.QueueSettings],
        only: set[str] | None = None,
    ) -> None:
        names = sorted(only if only is not None else set(counts) | set(settings))
        self.counts = {name: counts.get(name) or dict.fromkeys(jobs.STATES, 0) for name in names}
        self.settings = settings

    def left_to_run(self, queue: str | None = None) -> int:
        names = [queue] if queue is not None else list(self.counts)
        return sum(self.counts[name][state] for name in names for state in LEFT_TO_RUN)

    def done(self, queue: str) -> int:
        return sum(self.counts[queue][state] for state in DONE)

    def progress(self, since: Snapshot) -> dict[str, tuple[int, int]]:
        """Queue -> (jobs ended since ``since``, those and the ones left to run), for the
        queues that drain or drained since."""
        result = {}
        for name in self.counts:
            before = since.done(name) if name in since.counts else 0
            done = max(0, self.done(name) - before)  # the pruner may delete ended jobs
            total = done + self.left_to_run(name)
            if total:
                result[name] = (done, total)
        return result

    def to_json(self, since: Snapshot | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "queues": {
                name: {
                    "states": counts,
                    "paused": self._paused(name),
                    "limit": self._limit(name),
                }
                for name, counts in self.counts.items()
            }
        }
        if since is not None:
            data["progress"] = {
                name: {"done": done, "total": total}
                for name, (done, total) in self.progress(since).items()
            }
            data["left_to_run"] = self.left_to_run()
        return data

    def table(self) -> RenderableType:
        if not self.counts:
            return "No queues."
        table = Table("queue", *jobs.STATES, "paused", "limit")
        for name, counts in self.counts.items():
            limit = self._limit(name)
            table.add_row(
                name,
                *(str(counts[state]) for state in jobs.STATES),
                "yes" if self._paused(name) else "",
                "" if limit is None else str(limit),
            )
        return table

    def view(self, since: Snapshot) -> RenderableType:
        progress = self.progress(since)
        if not progress:
            return self.table()
        bars = Table("queue", "done since the watch began", "", box=None)
        for name, (done, total) in progress.items():
            bars.add_row(
                name, ProgressBar(total=total, completed=done, width=40), f"{done}/{total}"
            )
        return Group(self.table(), bars)

    def _paused(self, queue: str) -> bool:
        settings = self.settings.get(queue)
        return settings is not None and settings.paused

    def _limit(self, queue: str) -> int | None:
        settings = self.settings.get(queue)
        return None if settings is None else settings.limit


async def _snapshot(conn: db.Database, only: set[str] | None = None) -> Snapshot:
    return Snapshot(await jobs.queue_stats(conn), await jobs.queue_settings(conn), only)


def _settings(settings: jobs.QueueSettings, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "queue": settings.queue,
                "paused": settings.paused,
                "limit": settings.limit,
                "updated_at": None
                if settings.updated_at is None
                else settings.updated_at.isoformat(),
            }
        )
        return
    limit = "each node's own" if settings.limit is None else str(settings.limit)
    stdout_console().print(
        f"Queue {settings.queue!r} on every node: {'paused' if settings.paused else 'running'}, "
        f"limit {limit}."
    )


# -- plumbing -----------------------------------------------------------------------------------


def _run(url: str, action: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``action`` on the database at ``url``, with the job queue's migrations applied."""
    return run_on_database(
        url,
        {jobs.COMPONENT: jobs.MIGRATIONS},
        action,
        invalid=(jobs.InvalidJob,),
        failed=(jobs.JobsError,),
    )


def _json_option(option: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        fail(f"{option} is not JSON: {error}", 2)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at must be an ISO-8601 time such as 2027-01-01T09:00:00+00:00, not {text!r}", 2)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
