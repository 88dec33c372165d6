"""Job queue benchmark: jobs through one node's queue on SQLite and PostgreSQL, each figure
beside a baseline measured in the same run, with the ratio, and issue 4's target.

    .venv/bin/python bench/jobs.py            # the full run (about a minute)
    .venv/bin/python bench/jobs.py --quick    # smaller counts, one round: a smoke run
    .venv/bin/python bench/jobs.py --postgres postgresql://postgres@127.0.0.1:5432/test

The figures, and what each is compared with:

- **No-op jobs/s** (SQLite, PostgreSQL): 20,000 jobs whose worker does nothing, enqueued
  beforehand (not timed), then run by one node with a queue of limit 100; timed from the
  moment the queue is resumed until every row reads ``completed``. Baseline: *the engine
  loop*, one task fetching 100 jobs and completing them in one statement, over and over,
  with no process at all: the database's share of the work. The ratio is what the runtime
  around it (a process per job, stages, batching) costs or gains.
- **Sleep jobs/s** (PostgreSQL): 2,000 jobs that each sleep 50 ms, limit 100 (ceiling
  2,000/s). Baseline: the same sleeps as asyncio tasks under a semaphore of 100.
- **Bulk enqueue/s** (PostgreSQL): ``enqueue_many`` in batches of 1,000. Baseline: the same
  rows through ``execute_many`` of a plain ``INSERT`` (one round trip a batch, no ids back).
- **Enqueue/s** (PostgreSQL), one job at a time, each awaited. Baseline: a plain
  ``INSERT ... RETURNING id`` through ``trunkline.db``. Each is a commit, so both are bound
  by the server's commit (its WAL flush); printed again with 8 callers at once, each one at
  a time, where the server flushes several commits together (not in the JSON line).
- **Pickup p50** (PostgreSQL; SQLite printed too): an idle queue, a job enqueued, the time
  until its worker starts. Baseline: the round trip of a bare ``NOTIFY`` to a ``LISTEN`` of
  the same database: the wake-up alone.

Each figure is the median of its rounds. Every measurement gets a store of its own (a SQLite
file on ``/dev/shm`` where there is one, with the driver's default ``synchronous=full``; a
PostgreSQL schema), so none inherits another's dead rows. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from trunkline import db, jobs, otp
from trunkline.jobs.engine import engine_for
from trunkline.otp.testing import run

MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
DEFAULT_POSTGRES = os.environ.get(
    "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
LIMIT = 100
BATCH = 1_000
SLEEP_S = 0.05
CALLERS = 8

# Issue 4's targets for one node.
TARGETS = {
    "sqlite_jobs_per_s": 10_000,
    "pg_jobs_per_s": 11_000,
    "sleep_jobs_per_s": 1_900,
    "pg_bulk_enqueue_per_s": 30_000,
    "pg_enqueue_per_s": 3_000,
    "pickup_p50_ms": 5.0,
}


@dataclass(frozen=True)
class Counts:
    rounds: int
    noop: int
    sleep: int
    enqueue: int
    pickups: int


FULL = Counts(rounds=3, noop=20_000, sleep=2_000, enqueue=3_000, pickups=200)
QUICK = Counts(rounds=1, noop=3_000, sleep=500, enqueue=500, pickups=30)


# -- stores ----------------------------------------------------------------------------------------


class Stores:
    """Fresh databases: a SQLite file, or a PostgreSQL schema, each migrated for jobs."""

    def __init__(self, postgres_url: str) -> None:
        self.postgres_url = postgres_url

    @asynccontextmanager
    async def open(self, kind: str) -> AsyncIterator[db.Database]:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(dir=MEMORY_DIRECTORY, prefix="bench-jobs-") as d:
                async with db.connect(f"sqlite:///{d}/jobs.db") as database:
                    await database.migrate({jobs.COMPONENT: jobs.MIGRATIONS})
                    yield database
            return
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.postgres_url)
        await admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in self.postgres_url else "?"
        try:
            url = f"{self.postgres_url}{separator}search_path={schema}"
            async with db.connect(url) as database:
                await database.migrate({jobs.COMPONENT: jobs.MIGRATIONS})
                yield database
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()


# -- the measurements ----------------------------------------------------------------------------


async def enqueue_all(database: db.Database, worker: jobs.Worker, n: int) -> None:
    for start in range(0, n, BATCH):
        await jobs.enqueue_many(
            database, [worker.new({"n": i}) for i in range(start, min(n, start + BATCH))]
        )


async def processing(
    database: db.Database, n: int, work: Callable[[], Awaitable[None]] | None
) -> float:
    """Jobs per second through a running node: resumed, until every row is completed."""
    registry = jobs.WorkerRegistry()

    @registry.worker(name="bench.job")
    async def job(job: jobs.Job) -> None:
        if work is not None:
            await work()

    # Done when every job has ended (its span's stop), then every row reads completed: the
    # table is read only after the last job, so that polling costs the work nothing.
    ended = asyncio.Event()
    stopped = 0

    def count(event: Any, measurements: dict[str, Any], metadata: dict[str, Any], _: Any) -> None:
        nonlocal stopped
        stopped += 1
        if stopped >= n:
            ended.set()

    node = jobs.Jobs(database, registry=registry, queues={"default": LIMIT}, migrate=False)
    supervisor = await node.start()
    try:
        await node.pause("default", local_only=True)
        await enqueue_all(database, job, n)
        with otp.telemetry.attached("bench.ended", [(*jobs.JOB_EVENT, "stop")], count):
            start = time.perf_counter()
            await node.resume("default", local_only=True)
            await ended.wait()
            while await database.fetch_val(_COMPLETED) < n:  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.0005)
            return n / (time.perf_counter() - start)
    finally:
        await otp.stop(supervisor, "shutdown")


_COMPLETED = f"SELECT count(*) FROM {jobs.TABLE} WHERE state = 'completed'"


async def engine_loop(database: db.Database, n: int) -> float:
    """The baseline of no-op processing: fetch 100, complete them in one statement, repeat."""
    await enqueue_all(database, jobs.worker(name="bench.job")(lambda job: None), n)
    engine = engine_for(database)
    clock = otp.current_node().clock
    start = time.perf_counter()
    while rows := await engine.fetch(database, "default", LIMIT, "bench", clock.now()):
        ids = [jobs.Job.from_row(row).id for row in rows]
        await engine.complete(database, ids, clock.now(), "bench")
    return n / (time.perf_counter() - start)


async def semaphore_sleeps(n: int) -> float:
    """The baseline of the sleep workload: asyncio tasks under a semaphore of LIMIT."""
    semaphore = asyncio.Semaphore(LIMIT)

    async def one() -> None:
        async with semaphore:
            await asyncio.sleep(SLEEP_S)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


async def bulk_enqueue(database: db.Database, n: int) -> float:
    worker = jobs.worker(name="bench.job")(lambda job: None)
    batches = [
        [worker.new({"n": i}) for i in range(s, min(n, s + BATCH))] for s in range(0, n, BATCH)
    ]
    start = time.perf_counter()
    for batch in batches:
        await jobs.enqueue_many(database, batch)
    return n / (time.perf_counter() - start)


_PLAIN_INSERT = (
    f"INSERT INTO {jobs.TABLE} (state, queue, worker, args, inserted_at, scheduled_at) "
    "VALUES ('available', 'default', 'bench.job', $1, $2, $2)"
)


async def bulk_insert(database: db.Database, n: int) -> float:
    now = otp.current_node().clock.now()
    batches = [
        [(json.dumps({"n": i}), now) for i in range(s, min(n, s + BATCH))]
        for s in range(0, n, BATCH)
    ]
    start = time.perf_counter()
    for batch in batches:
        await database.execute_many(_PLAIN_INSERT, batch)
    return n / (time.perf_counter() - start)


async def one_by_one(database: db.Database, n: int) -> float:
    worker = jobs.worker(name="bench.job")(lambda job: None)
    start = time.perf_counter()
    for i in range(n):
        await jobs.enqueue(database, worker, {"n": i})
    return n / (time.perf_counter() - start)


async def plain_inserts(database: db.Database, n: int) -> float:
    insert = _PLAIN_INSERT + " RETURNING id"
    clock = otp.current_node().clock
    start = time.perf_counter()
    for i in range(n):
        await database.fetch_val(insert, json.dumps({"n": i}), clock.now())
    return n / (time.perf_counter() - start)


async def callers(
    measure: Callable[[db.Database, int], Awaitable[float]], database: db.Database, n: int
) -> float:
    """``measure`` run by CALLERS tasks at once, each doing its share one at a time."""
    share = n // CALLERS
    start = time.perf_counter()
    await asyncio.gather(*(measure(database, share) for _ in range(CALLERS)))
    return share * CALLERS / (time.perf_counter() - start)


async def pickups(database: db.Database, n: int) -> float:
    """The median milliseconds from enqueue to the worker starting, on an idle queue."""
    registry = jobs.WorkerRegistry()
    started: asyncio.Queue[float] = asyncio.Queue()

    @registry.worker(name="bench.probe")
    async def probe(job: jobs.Job) -> None:
        started.put_nowait(time.perf_counter())

    # A slow poll: what is measured is the wake-up by notification.
    node = jobs.Jobs(database, registry=registry, poll_interval_s=60, migrate=False)
    supervisor = await node.start()
    samples = []
    try:
        for _ in range(n):
            await asyncio.sleep(0.01)  # idle again
            before = time.perf_counter()
            await jobs.enqueue(database, probe, {})
            samples.append(await started.get() - before)
    finally:
        await otp.stop(supervisor, "shutdown")
    return statistics.median(samples) * 1000


async def notify_round_trips(database: db.Database, n: int) -> float:
    samples = []
    async with database.listen("bench_ping") as heard:
        for _ in range(n):
            await asyncio.sleep(0.01)
            before = time.perf_counter()
            await database.notify("bench_ping", "x")
            await heard.get()
            samples.append(time.perf_counter() - before)
    return statistics.median(samples) * 1000


# -- the run ---------------------------------------------------------------------------------------


async def median_of(
    rounds: int, stores: Stores, kind: str, measure: Callable[[db.Database], Awaitable[float]]
) -> float:
    values = []
    for _ in range(rounds):
        async with stores.open(kind) as database:
            values.append(await measure(database))
    return statistics.median(values)


def report(
    label: str, value: float, unit: str, baseline_label: str, baseline: float, key: str | None
) -> None:
    lower_is_better = unit == "ms"
    ratio = baseline / value if lower_is_better else value / baseline
    target = ""
    if key is not None:
        goal = TARGETS[key]
        met = value <= goal if lower_is_better else value >= goal
        target = (
            f"   target {'<=' if lower_is_better else '>='} {goal:,g} {'met' if met else 'MISSED'}"
        )
    print(
        f"{label:<38} {value:>10,.1f} {unit:<6} {baseline_label:<30} {baseline:>10,.1f} "
        f"ratio {ratio:5.2f}{target}",
        flush=True,
    )


async def main(counts: Counts, postgres_url: str) -> dict[str, float]:
    stores = Stores(postgres_url)
    r = counts.rounds
    results: dict[str, float] = {}
    print(f"{'figure':<38} {'ours':>10} {'':<6} {'baseline (same run)':<30} {'':>10} ratio")

    for kind, key in (("sqlite", "sqlite_jobs_per_s"), ("postgresql", "pg_jobs_per_s")):
        ours = await median_of(r, stores, kind, lambda d: processing(d, counts.noop, None))
        bare = await median_of(r, stores, kind, lambda d: engine_loop(d, counts.noop))
        report(f"no-op jobs/s ({kind})", ours, "/s", "engine loop, no processes", bare, key)
        results[key] = ours

    async def sleep() -> None:
        await asyncio.sleep(SLEEP_S)

    ours = await median_of(r, stores, "postgresql", lambda d: processing(d, counts.sleep, sleep))
    bare = statistics.median([await semaphore_sleeps(counts.sleep) for _ in range(r)])
    report(
        "sleep jobs/s (postgresql)",
        ours,
        "/s",
        "asyncio tasks, semaphore 100",
        bare,
        "sleep_jobs_per_s",
    )
    results["sleep_jobs_per_s"] = ours

    ours = await median_of(r, stores, "postgresql", lambda d: bulk_enqueue(d, counts.noop))
    bare = await median_of(r, stores, "postgresql", lambda d: bulk_insert(d, counts.noop))
    report(
        "bulk enqueue/s (postgresql)",
        ours,
        "/s",
        "execute_many of an INSERT",
        bare,
        "pg_bulk_enqueue_per_s",
    )
    results["pg_bulk_enqueue_per_s"] = ours

    ours = await median_of(r, stores, "postgresql", lambda d: one_by_one(d, counts.enqueue))
    bare = await median_of(r, stores, "postgresql", lambda d: plain_inserts(d, counts.enqueue))
    report(
        "enqueue/s, one at a time (postgresql)",
        ours,
        "/s",
        "INSERT ... RETURNING id",
        bare,
        "pg_enqueue_per_s",
    )
    results["pg_enqueue_per_s"] = ours

    ours = await median_of(
        r, stores, "postgresql", lambda d: callers(one_by_one, d, counts.enqueue)
    )
    bare = await median_of(
        r, stores, "postgresql", lambda d: callers(plain_inserts, d, counts.enqueue)
    )
    report(
        f"enqueue/s, {CALLERS} callers (postgresql)",
        ours,
        "/s",
        "INSERT ... RETURNING id",
        bare,
        None,
    )

    for kind in ("postgresql", "sqlite"):
        ours = await median_of(r, stores, kind, lambda d: pickups(d, counts.pickups))
        bare = await median_of(r, stores, kind, lambda d: notify_round_trips(d, counts.pickups))
        key = "pickup_p50_ms" if kind == "postgresql" else None
        report(f"pickup p50 ({kind})", ours, "ms", "NOTIFY to LISTEN round trip", bare, key)
        if key is not None:
            results[key] = ours
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, one round")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="the server to use")
    options = parser.parse_args()
    counts = QUICK if options.quick else FULL
    results = run(lambda: main(counts, options.postgres), real_clock=True)
    print(json.dumps({key: round(value, 2) for key, value in results.items()}))


if __name__ == "__main__":
    sys.exit(cli())
