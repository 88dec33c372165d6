"""Database layer benchmark: inserts and point reads through ``trunkline.db`` against the bare
driver doing the same, on SQLite and PostgreSQL, in the same run.

Each figure is printed beside its baseline with the ratio (ours / bare; the target is >= 0.85),
and the last line is one JSON object::

    .venv/bin/python bench/db.py            # the full run
    .venv/bin/python bench/db.py --quick    # smaller counts, a smoke run
    .venv/bin/python bench/db.py --postgres postgresql://postgres@127.0.0.1:5432/test

Baselines, the least each driver can do:

- SQLite: ``sqlite3`` on one worker thread, fed by a ``SimpleQueue`` and answering with
  ``loop.call_soon_threadsafe`` into a future - the least hand-off that keeps the event loop
  free, as the layer must. Bare ``sqlite3`` called on the loop thread itself (which blocks the
  loop) is printed too, for reference only. Both sides use WAL with the layer's default
  ``synchronous=full``, on ``/dev/shm`` where there is one: a disk's fsync and writeback
  would drown what is measured (reads stall for milliseconds while the kernel writes back
  the WAL index of an earlier burst of inserts).
- PostgreSQL: one asyncpg connection, used directly. An asyncpg ``Pool`` is printed for
  reference. The table is analysed before the reads, so that every side's prepared
  statement is planned alike (one prepared while the table's statistics were stale can
  take a slower plan, which would decide the figure instead of the layer).

One statement at a time (each awaited before the next), best of several interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from queue import SimpleQueue
from typing import Any

import uvloop

from trunkline import db, otp

INSERT = "INSERT INTO kv (id, v) VALUES ($1, $2)"
SELECT = "SELECT id, v FROM kv WHERE id = $1"
SQLITE_INSERT = "INSERT INTO kv (id, v) VALUES (?1, ?2)"
SQLITE_SELECT = "SELECT id, v FROM kv WHERE id = ?1"
CREATE = "CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
BATCH = 100
VALUE = "x" * 32
MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None


class BareSQLiteThread:
    """sqlite3 on one thread: the fair baseline for a layer that must not block the loop."""

    def __init__(self, path: str) -> None:
        self.jobs: SimpleQueue[Any] = SimpleQueue()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self.serve, args=(path,), daemon=True)
        self.thread.start()

    def serve(self, path: str) -> None:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=full")
        post = self.loop.call_soon_threadsafe
        while (job := self.jobs.get()) is not None:
            future, function, args = job
            try:
                result = function(connection, *args)
            except BaseException as error:
                post(future.set_exception, error)
            else:
                post(future.set_result, result)
        connection.close()

    def call(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.jobs.put((future, function, args))
        return future

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()


def _insert(connection: sqlite3.Connection, i: int) -> None:
    connection.execute(SQLITE_INSERT, (i, VALUE))


def _insert_many(connection: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(SQLITE_INSERT, rows)
    connection.execute("COMMIT")


def _select(connection: sqlite3.Connection, i: int) -> Any:
    return connection.execute(SQLITE_SELECT, (i,)).fetchone()


Measure = Callable[[int], Awaitable[float]]


async def rate(n: int, body: Callable[[int], Awaitable[Any]], per_call: int = 1) -> float:
    start = time.perf_counter()
    for i in range(n):
        await body(i)
    return n * per_call / (time.perf_counter() - start)


def batches(start: int, n: int) -> Callable[[int], list[tuple[int, str]]]:
    return lambda i: [(start + i * BATCH + j, VALUE) for j in range(BATCH)]


async def sqlite_figures(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """{figure: (ours, bare thread)}, and the on-loop reference under '<figure>/sync'."""
    directory = tempfile.mkdtemp(prefix="trunkline-bench-", dir=MEMORY_DIRECTORY)
    ours_path = os.path.join(directory, "ours.db")
    bare_path = os.path.join(directory, "bare.db")
    sync_path = os.path.join(directory, "sync.db")
    database = await db.connect(f"sqlite:///{ours_path}")
    await database.execute(CREATE)
    bare = BareSQLiteThread(bare_path)
    await bare.call(lambda c: c.execute(CREATE))
    sync = sqlite3.connect(sync_path, isolation_level=None)
    sync.execute("PRAGMA journal_mode=WAL")
    sync.execute("PRAGMA synchronous=full")
    sync.execute(CREATE)

    results: dict[str, tuple[float, float]] = {}
    references: dict[str, float] = {}
    best = {"insert": [0.0, 0.0, 0.0], "batch": [0.0, 0.0, 0.0], "read": [0.0, 0.0, 0.0]}
    for r in range(rounds):
        base = r * n * BATCH * 2
        ours = await rate(n, lambda i, b=base: database.execute(INSERT, b + i, VALUE))
        theirs = await rate(n, lambda i, b=base: bare.call(_insert, b + i))
        on_loop = await rate(n, lambda i, b=base: _sync(_insert, sync, b + i))
        _keep(best["insert"], ours, theirs, on_loop)
        base += n
        rows = batches(base, n)
        ours = await rate(n // 10, lambda i, r=rows: database.execute_many(INSERT, r(i)), BATCH)
        theirs = await rate(n // 10, lambda i, r=rows: bare.call(_insert_many, r(i)), BATCH)
        on_loop = await rate(n // 10, lambda i, r=rows: _sync(_insert_many, sync, r(i)), BATCH)
        _keep(best["batch"], ours, theirs, on_loop)
        ours = await rate(n, lambda i: database.fetch_one(SELECT, i))
        theirs = await rate(n, lambda i: bare.call(_select, i))
        on_loop = await rate(n, lambda i: _sync(_select, sync, i))
        _keep(best["read"], ours, theirs, on_loop)
    for figure, (ours, theirs, on_loop) in best.items():
        results[figure] = (ours, theirs)
        references[figure] = on_loop
    await database.close()
    bare.close()
    sync.close()
    shutil.rmtree(directory)
    for figure, value in references.items():
        results[f"{figure}/sync"] = (value, value)
    return results


async def _sync(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def _keep(best: list[float], *values: float) -> None:
    for i, value in enumerate(values):
        best[i] = max(best[i], value)


async def postgres_figures(url: str, n: int, rounds: int) -> dict[str, tuple[float, float]]:
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(url)
    schema = f"bench_{os.getpid()}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        scoped = f"{url}{'&' if '?' in url else '?'}search_path={schema}"
        await admin.execute(f"SET search_path = {schema}")
        await admin.execute(CREATE)
        database = await db.connect(scoped)
        bare = await asyncpg.connect(scoped)
        pool = await asyncpg.create_pool(scoped, min_size=1, max_size=2)
        best = {"insert": [0.0, 0.0, 0.0], "batch": [0.0, 0.0, 0.0], "read": [0.0, 0.0, 0.0]}
        for r in range(rounds):
            base = r * n * BATCH * 3
            ours = await rate(n, lambda i, b=base: database.execute(INSERT, b + i, VALUE))
            theirs = await rate(n, lambda i, b=base + n: bare.execute(INSERT, b + i, VALUE))
            pooled = await rate(n, lambda i, b=base + 2 * n: pool.execute(INSERT, b + i, VALUE))
            _keep(best["insert"], ours, theirs, pooled)
            base += 3 * n
            ours_rows, bare_rows, pool_rows = (
                batches(base, n),
                batches(base + n * BATCH, n),
                batches(base + 2 * n * BATCH, n),
            )
            ours = await rate(
                n // 10, lambda i, r=ours_rows: database.execute_many(INSERT, r(i)), BATCH
            )
            theirs = await rate(
                n // 10, lambda i, r=bare_rows: bare.executemany(INSERT, r(i)), BATCH
            )
            pooled = await rate(
                n // 10, lambda i, r=pool_rows: pool.executemany(INSERT, r(i)), BATCH
            )
            _keep(best["batch"], ours, theirs, pooled)
            # Fresh statistics, so that every side's prepared statement is planned alike.
            await admin.execute("ANALYZE kv")
            ours = await rate(n, lambda i: database.fetch_one(SELECT, i))
            theirs = await rate(n, lambda i: bare.fetchrow(SELECT, i))
            pooled = await rate(n, lambda i: pool.fetchrow(SELECT, i))
            _keep(best["read"], ours, theirs, pooled)
        await database.close()
        await bare.close()
        await pool.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    results = {figure: (ours, theirs) for figure, (ours, theirs, _) in best.items()}
    for figure, (_, _, pooled) in best.items():
        results[f"{figure}/pool"] = (pooled, pooled)
    return results


def report(label: str, ours: float, bare: float, unit: str = "per s") -> None:
    print(
        f"{label:<40} {ours:>12,.0f} {unit:<6} bare {bare:>12,.0f}   ratio {ours / bare:5.2f}"
        "   target >= 0.85"
    )


def reference(label: str, value: float, unit: str = "per s") -> None:
    print(f"{label:<40} {value:>12,.0f} {unit:<6} (reference)")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    otp.start_node()
    n = 2_000 if args.quick else 10_000
    rounds = 2 if args.quick else 4
    print(
        f"trunkline.db benchmark (uvloop, {'quick' if args.quick else 'full'} run, "
        f"one statement at a time, best of {rounds} rounds)"
    )
    figures: dict[str, Any] = {}
    lite = await sqlite_figures(n, rounds)
    report("SQLite inserts, one per statement", *lite["insert"])
    report("SQLite inserts, execute_many x100 (rows)", *lite["batch"])
    report("SQLite point reads by primary key", *lite["read"])
    reference("  sqlite3 on the loop thread: inserts", lite["insert/sync"][0])
    reference("  sqlite3 on the loop thread: batch rows", lite["batch/sync"][0])
    reference("  sqlite3 on the loop thread: reads", lite["read/sync"][0])
    figures.update(
        sqlite_insert_ratio=lite["insert"][0] / lite["insert"][1],
        sqlite_batch_insert_ratio=lite["batch"][0] / lite["batch"][1],
        sqlite_read_ratio=lite["read"][0] / lite["read"][1],
    )
    try:
        pg = await postgres_figures(args.postgres, n, rounds)
    except (OSError, db.DatabaseError) as error:
        print(f"PostgreSQL at {args.postgres}: unreachable ({error}); skipped", file=sys.stderr)
        figures.update(pg_insert_ratio=None, pg_batch_insert_ratio=None, pg_read_ratio=None)
    else:
        report("PostgreSQL inserts, one per statement", *pg["insert"])
        report("PostgreSQL inserts, execute_many x100 (rows)", *pg["batch"])
        report("PostgreSQL point reads by primary key", *pg["read"])
        reference("  asyncpg Pool: inserts", pg["insert/pool"][0])
        reference("  asyncpg Pool: batch rows", pg["batch/pool"][0])
        reference("  asyncpg Pool: reads", pg["read/pool"][0])
        figures.update(
            pg_insert_ratio=pg["insert"][0] / pg["insert"][1],
            pg_batch_insert_ratio=pg["batch"][0] / pg["batch"][1],
            pg_read_ratio=pg["read"][0] / pg["read"][1],
        )
    return {key: None if value is None else round(value, 3) for key, value in figures.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, a smoke run")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="the PostgreSQL server to measure against",
    )
    print(json.dumps(uvloop.run(main(parser.parse_args()))))
