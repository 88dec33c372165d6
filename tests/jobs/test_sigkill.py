"""A node killed with SIGKILL loses no job: another node's lifeline rescues what it left
executing, and every job completes. Real processes, real time, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from job_backends import Backend

import pg
from trunkline import db, jobs

SCRIPT = Path(__file__).with_name("node_script.py")
JOBS = 50


async def _url_of(database: db.Database, backend: Backend) -> str:
    """A URL for another process to reach the same database (and schema)."""
    if backend.name == "sqlite":
        path = await database.fetch_val("SELECT file FROM pragma_database_list WHERE name = 'main'")
        return f"sqlite:///{path}"
    schema = await database.fetch_val("SELECT current_schema()")
    return pg.with_options(pg.POSTGRES_URL, search_path=schema)


@contextlib.asynccontextmanager
async def _node(url: str, name: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A node in a process of its own, ready once this enters; stopped after if alive."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), url, name, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = await process.stdout.readline()
        assert line.strip() == b"ready", f"node {name} did not start: {line!r}"
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # a graceful stop: asyncio.run cancels main
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - another process writes the rows
                await asyncio.sleep(0.05)  # real time: another process is at work
    except TimeoutError:
        raise AssertionError(f"never happened within {timeout_s}s: {what}") from None


async def _count(database: db.Database, state: str) -> int:
    count: int = await database.fetch_val(
        f"SELECT count(*) FROM {jobs.TABLE} WHERE state = $1", state
    )
    return count


@pytest.mark.real_clock
async def test_the_jobs_of_a_killed_node_are_rescued_and_completed(backend: Backend) -> None:
    async with backend.database() as database:
        url = await _url_of(database, backend)
        async with _node(url, "doomed") as doomed:
            await jobs.enqueue_many(
                database, [jobs.new_job("sigkill.slow", {"seconds": 0.5}) for _ in range(JOBS)]
            )
            await _until(
                lambda: _at_least(database, "executing", 5), "jobs executing", timeout_s=20
            )
            doomed.kill()  # SIGKILL: no terminate, no putting back, the row left behind
            await doomed.wait()
        assert doomed.returncode == -signal.SIGKILL
        left = {
            row[0]
            for row in await database.fetch(
                f"SELECT id FROM {jobs.TABLE} WHERE state = 'executing' AND attempted_by = $1",
                "doomed",
            )
        }
        assert left, "the killed node left no job executing: nothing was tested"

        async with _node(url, "rescuer"):
            await _until(
                lambda: _at_least(database, "completed", JOBS), "all completed", timeout_s=30
            )

        assert await _count(database, "executing") == 0
        assert await _count(database, "completed") == JOBS
        rescued = set()
        for job in await jobs.list_jobs(database, limit=JOBS):
            if job.attempt == 2:
                rescued.add(job.id)
                [error] = job.errors
                assert error["type"] == jobs.NODE_LOST
                assert error["node"] == "doomed"
                assert error["attempt"] == 1
                assert "node 'doomed' is lost" in error["message"]
                assert "rescued by node 'rescuer'" in error["message"]
            else:
                assert (job.attempt, job.errors) == (1, [])
        assert rescued == left


async def _at_least(database: db.Database, state: str, count: int) -> bool:
    return await _count(database, state) >= count
