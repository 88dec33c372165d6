"""What the job queue's tests share: a database on each backend, an outage on each, and ways
to wait for the queue without real sleeps.

Every test that touches the database runs twice, on SQLite (a file) and on the real
PostgreSQL (a schema of its own; see ``tests/pg.py``), through the ``backend`` fixture of
``conftest.py``. These tests wait on real I/O, so they run on a ``MockClock`` whose autojump
waits :data:`IDLE_S` of real idleness before moving virtual time on: the database answers
well within it, and timeouts, backoff and polls still cost no real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pg
from statement_waits import eventually
from trunkline import db, jobs, otp

__all__ = [
    "IDLE_S",
    "Backend",
    "Concurrency",
    "Recorder",
    "eventually",
    "process_of",
    "running",
    "wait_for_state",
]

IDLE_S = 0.05
"""How long the test loop must be idle, for real, before virtual time jumps."""


class Backend:
    """A database engine the tests run on: ``"sqlite"`` or ``"postgresql"``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self._directory = directory
        self._count = 0

    def __repr__(self) -> str:
        return self.name

    @asynccontextmanager
    async def database(
        self, *, migrate: bool = True, **options: object
    ) -> AsyncIterator[db.Database]:
        """A fresh, empty database (migrated for jobs unless ``migrate`` is false)."""
        async with self.databases(1, migrate=migrate, **options) as [database]:
            yield database

    @asynccontextmanager
    async def databases(
        self, count: int, *, migrate: bool = True, url: str | None = None, **options: object
    ) -> AsyncIterator[Sequence[db.Database]]:
        """``count`` connections to one fresh database: as many nodes."""
        if self.name == "sqlite":
            self._count += 1
            path = self._directory / f"jobs-{self._count}.db"
            query = "&".join(f"{k}={v}" for k, v in options.items())
            databases = [
                await db.connect(f"sqlite:///{path}" + (f"?{query}" if query else ""))
                for _ in range(count)
            ]
            try:
                if migrate:
                    await databases[0].migrate({jobs.COMPONENT: jobs.MIGRATIONS})
                yield databases
            finally:
                for database in databases:
                    await database.close()
            return
        # No statement timeout: it runs on the test's virtual clock, which jumps whenever the
        # loop idles for IDLE_S of real time, so a statement slower than that would "time out".
        options.setdefault("command_timeout_s", 0)
        async with pg.postgres_schema(count, url=url or pg.POSTGRES_URL, **options) as databases:
            if migrate:
                await databases[0].migrate({jobs.COMPONENT: jobs.MIGRATIONS})
            yield databases

    @asynccontextmanager
    async def broken_database(self) -> AsyncIterator[tuple[db.Database, Outage]]:
        """A database, and an :class:`Outage` that takes it away and brings it back.

        SQLite: the table is renamed away (every statement of the queue fails). PostgreSQL:
        the server is reached through a proxy that is stopped (connections drop, new ones
        are refused).
        """
        if self.name == "sqlite":
            async with self.database() as database:
                yield database, _RenamedTable(database)
            return
        proxy = pg.Proxy()
        await proxy.start()
        try:
            url = pg.through_port(proxy.port)
            async with self.databases(1, url=url, reconnect_timeout_s=1) as [database]:
                yield database, _StoppedProxy(proxy)
        finally:
            await proxy.stop()


class Outage:
    """``async with outage:`` - the database is unreachable inside the block."""

    async def __aenter__(self) -> None:
        raise NotImplementedError

    async def __aexit__(self, *exc_info: object) -> None:
        raise NotImplementedError


class _RenamedTable(Outage):
    def __init__(self, database: db.Database) -> None:
        self.database = database

    async def __aenter__(self) -> None:
        await self.database.execute(f"ALTER TABLE {jobs.TABLE} RENAME TO trunkline_jobs_away")

    async def __aexit__(self, *exc_info: object) -> None:
        await self.database.execute(f"ALTER TABLE trunkline_jobs_away RENAME TO {jobs.TABLE}")


class _StoppedProxy(Outage):
    def __init__(self, proxy: pg.Proxy) -> None:
        self.proxy = proxy

    async def __aenter__(self) -> None:
        await self.proxy.stop()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.proxy.start()


@asynccontextmanager
async def running(
    database: db.Database, registry: jobs.WorkerRegistry, **options: Any
) -> AsyncIterator[jobs.Jobs]:
    """A node's job queue running on ``database`` for the block, stopped gracefully after.

    The backend migrated the database already: the node does not again, unless asked
    (``migrate=True``), as migrating takes a lock that is the whole server's, and another
    test run on the same server may hold it for longer than the mock clock waits.
    """
    options.setdefault("node", "test-node")
    options.setdefault("migrate", False)
    node = jobs.Jobs(database, registry=registry, **options)
    supervisor = await node.start()
    try:
        yield node
    finally:
        if otp.is_alive(supervisor):
            await otp.stop(supervisor, "shutdown")


def process_of(node: jobs.Jobs, role: str, queue: str = "default") -> otp.Pid:
    """The pid of ``role`` (``"producer"``, ``"executor"``, ``"queue"``...) of ``queue``."""
    pid = otp.resolve(otp.Via(node.names, (role, queue)))
    assert pid is not None, f"no {role} for {queue!r}"
    return pid


class Concurrency:
    """Counts the jobs running at once, for workers that enter and leave it."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.done = 0

    def __enter__(self) -> Concurrency:
        self.now += 1
        self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.now -= 1
        self.done += 1


async def wait_for_state(
    database: db.Database, job_id: int, *states: jobs.State, timeout_s: float = 60.0
) -> jobs.Job:
    """Wait until job ``job_id`` is in one of ``states``; return it."""
    found: list[jobs.Job] = []

    async def check() -> bool:
        job = await jobs.get_job(database, job_id)
        found[:] = [job] if job is not None else []
        return job is not None and job.state in states

    await eventually(check, f"job {job_id} in {states}", timeout_s=timeout_s)
    return found[0]


class Recorder:
    """Records job telemetry (stop and exception events) for a test, and wakes waiters.

    Use as a context manager; ``await recorder.wait(count)`` returns once ``count`` attempts
    have ended.
    """

    def __init__(self) -> None:
        self.stops: list[dict[str, Any]] = []
        self.exceptions: list[dict[str, Any]] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._context = otp.telemetry.attached(
            f"job-recorder-{id(self)}",
            [(*jobs.JOB_EVENT, "stop"), (*jobs.JOB_EVENT, "exception")],
            self._handle,
        )

    def __enter__(self) -> Recorder:
        self._context.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)

    @property
    def ended(self) -> list[dict[str, Any]]:
        """Every attempt that ended, in order: metadata with the measurements merged in."""
        return sorted(self.stops + self.exceptions, key=lambda e: e["monotonic_time"])

    def _handle(
        self, event: Any, measurements: dict[str, Any], metadata: dict[str, Any], config: Any
    ) -> None:
        entry = {**metadata, **measurements}
        (self.stops if event[-1] == "stop" else self.exceptions).append(entry)
        count = len(self.stops) + len(self.exceptions)
        for wanted, future in self._waiters:
            if count >= wanted and not future.done():
                future.set_result(None)

    async def wait(self, count: int, *, timeout_s: float = 60.0) -> None:
        """Wait until ``count`` attempts have ended (stop or exception)."""
        if len(self.stops) + len(self.exceptions) >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        async with asyncio.timeout(timeout_s):
            await future
