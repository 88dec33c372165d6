"""Database layer benchmark: inserts and point reads through ``trunkline.db`` against the bare
driver doing the same, on SQLite and PostgreSQL, in the same run.

Each figure is printed beside its baseline with the ratio (ours / bare; the target is >= 0.85),
and the last line is one JSON object::

    .venv/bin/python bench/db.py            # the full run, about a minute
    .venv/bin/python bench/db.py --quick    # fewer rounds, smaller counts: a smoke run
    .venv/bin/python bench/db.py --unpinned # threads and server processes as scheduled
    .venv/bin/python bench/db.py --postgres postgresql://postgres@127.0.0.1:5432/test

Baselines, the least each driver can do:

- SQLite: ``sqlite3`` on one worker thread, fed by a ``SimpleQueue`` and answering with
  ``loop.call_soon_threadsafe(future.set_result, result)``: the least hand-off that keeps
  the event loop free, as the layer must. It returns plain tuples and converts no types.
  ``sqlite3`` called on the loop thread itself (which blocks the loop) is printed too, for
  reference only. Every side uses WAL with the layer's default ``synchronous=full``, on
  ``/dev/shm`` where there is one: a disk's fsync and writeback would drown what is measured
  (reads stall for milliseconds while the kernel writes back the WAL index of an earlier
  burst of inserts).
- PostgreSQL: one asyncpg connection, used directly. An asyncpg ``Pool`` is printed for
  reference. The tables are analysed before the reads, so that every side's prepared
  statement is planned alike (one prepared while a table's statistics were stale can take a
  slower plan, which would decide the figure instead of the layer).

Method: one statement at a time, each awaited before the next, every side on a table (on
SQLite, a file) of its own.

- **Paired rounds, medians.** In each round, every figure runs ours and bare back to back
  (which goes first alternates from round to round and from figure to figure), and the
  round's ratio is ours / bare from those two measurements alone. The figure reported is
  the median of the per-round ratios, with the lowest and highest beside it; the rates
  printed are each side's median. A burst of noise spoils one round's ratio, which the
  median sets aside; it no longer decides a whole figure, as it did when each side's best
  of a few unpaired rounds was taken. One round, not counted, warms up first (threads,
  statement caches, prepared statements).
- **One CPU.** The benchmark's threads - the event loop, the layer's SQLite threads and the
  bare one - and the server processes of the PostgreSQL connections measured all run on one
  CPU (the last one allowed). A statement's hand-off from one thread or process to another
  is then a context switch, a few microseconds, the same every time. Across CPUs it costs
  whatever waking the other CPU costs: on a virtual machine whose idle CPUs halt, from 8 to
  over 70 us depending on the host's state of the moment, which changes every few seconds.
  The pair measured in one round would then compare where the scheduler happened to put
  each side's thread or server process (a ratio of 0.2 or 4.5 either way, for as long as
  the placement lasts), not the layers. On one CPU nothing of each statement's cost is
  hidden, so the ratio is, if anything, the stricter. ``--unpinned`` measures as scheduled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

import uvloop

from trunkline import db, otp

CREATE = "CREATE TABLE {table} (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
INSERT = "INSERT INTO {table} (id, v) VALUES ($1, $2)"
SELECT = "SELECT id, v FROM {table} WHERE id = $1"
SQLITE_INSERT = "INSERT INTO kv (id, v) VALUES (?1, ?2)"
SQLITE_SELECT = "SELECT id, v FROM kv WHERE id = ?1"
BATCH = 100
VALUE = "x" * 32
MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
FIGURES = ("insert", "batch", "read")


@dataclass(frozen=True)
class Counts:
    """Rounds, and statements per measurement (a reference measures a quarter as many)."""

    rounds: int
    sqlite: int  # inserts and reads; batches: a tenth as many, of BATCH rows
    postgres_insert: int
    postgres_batch: int
    postgres_read: int


FULL = Counts(
    rounds=11, sqlite=10_000, postgres_insert=5_000, postgres_batch=300, postgres_read=10_000
)
QUICK = Counts(rounds=3, sqlite=2_000, postgres_insert=300, postgres_batch=30, postgres_read=1_000)

Call = Callable[[Any], Awaitable[Any]]


# -- the sides -----------------------------------------------------------------------------------


class Side:
    """One way of running the statements, on a table of its own: each call returns the
    awaitable of one statement, with no coroutine of the benchmark's own around it."""

    def __init__(self, name: str, insert: Call, insert_many: Call, read: Call) -> None:
        self.name = name
        self.calls = {"insert": insert, "batch": insert_many, "read": read}
        self.next_id = 0

    async def measure(self, figure: str, n: int) -> float:
        """The rate (statements per second; rows for batches) of ``n`` statements."""
        first = self.next_id
        if figure == "insert":
            self.next_id += n
            items: Sequence[Any] = range(first, first + n)
        elif figure == "batch":
            # Built before the clock starts: the rows are the caller's work, not the driver's.
            self.next_id += n * BATCH
            starts = range(first, first + n * BATCH, BATCH)
            items = [[(i, VALUE) for i in range(start, start + BATCH)] for start in starts]
        else:
            # Spread over every id inserted so far: point reads that find their row.
            step = max(1, first // n)
            items = range(0, n * step, step)
        call = self.calls[figure]
        start = time.perf_counter()
        for item in items:
            await call(item)
        per_statement = BATCH if figure == "batch" else 1
        return n * per_statement / (time.perf_counter() - start)


def ours(database: db.Database, table: str) -> Side:
    """``trunkline.db``, called as its users call it."""
    execute, execute_many, fetch_one = database.execute, database.execute_many, database.fetch_one
    insert, select = INSERT.format(table=table), SELECT.format(table=table)
    return Side(
        "ours",
        lambda i: execute(insert, i, VALUE),
        lambda rows: execute_many(insert, rows),
        lambda i: fetch_one(select, i),
    )


def bare_asyncpg(name: str, connection: Any, table: str) -> Side:
    """An asyncpg connection (or pool) used directly."""
    execute, executemany, fetchrow = connection.execute, connection.executemany, connection.fetchrow
    insert, select = INSERT.format(table=table), SELECT.format(table=table)
    return Side(
        name,
        lambda i: execute(insert, i, VALUE),
        lambda rows: executemany(insert, rows),
        lambda i: fetchrow(select, i),
    )


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

    def side(self) -> Side:
        call = self.call
        return Side(
            "bare",
            lambda i: call(_insert, i),
            lambda rows: call(_insert_many, rows),
            lambda i: call(_select, i),
        )

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()


def sqlite_on_loop(connection: sqlite3.Connection) -> Side:
    """sqlite3 called on the loop thread, which it blocks: for reference only."""

    async def insert(i: int) -> None:
        _insert(connection, i)

    async def insert_many(rows: list[tuple[int, str]]) -> None:
        _insert_many(connection, rows)

    async def read(i: int) -> Any:
        return _select(connection, i)

    return Side("reference", insert, insert_many, read)


def _insert(connection: sqlite3.Connection, i: int) -> None:
    connection.execute(SQLITE_INSERT, (i, VALUE))


def _insert_many(connection: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(SQLITE_INSERT, rows)
    connection.execute("COMMIT")


def _select(connection: sqlite3.Connection, i: int) -> Any:
    return connection.execute(SQLITE_SELECT, (i,)).fetchone()


def _open_sqlite(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=full")
    return connection


# -- the method: paired rounds, medians ----------------------------------------------------------


@dataclass
class Figure:
    """One figure's rates, round by round."""

    ours: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [ours / bare for ours, bare in zip(self.ours, self.bare, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


async def paired_rounds(
    ours: Side,
    bare: Side,
    reference: Side,
    counts: dict[str, int],
    rounds: int,
    before_reads: Callable[[], Awaitable[Any]] | None = None,
    after_warm_up: Callable[[], Awaitable[Any]] | None = None,
) -> dict[str, Figure]:
    """Every figure, ``rounds`` times after one warm-up round: ours and bare back to back,
    alternating which goes first, then the reference."""
    figures = {figure: Figure() for figure in FIGURES}
    for r in range(-1, rounds):
        warm_up = r < 0
        if r == 0 and after_warm_up is not None:
            await after_warm_up()
        for k, figure in enumerate(FIGURES):
            n = counts[figure] // 5 if warm_up else counts[figure]
            if figure == "read" and before_reads is not None:
                await before_reads()
            pair = (ours, bare) if (r + k) % 2 == 0 else (bare, ours)
            rates = {side.name: await side.measure(figure, n) for side in pair}
            # For context only: a quarter as many statements will do.
            rates["reference"] = await reference.measure(figure, max(1, n // 4))
            if not warm_up:
                figures[figure].ours.append(rates["ours"])
                figures[figure].bare.append(rates["bare"])
                figures[figure].reference.append(rates["reference"])
    return figures


async def sqlite_figures(counts: Counts) -> dict[str, Figure]:
    directory = tempfile.mkdtemp(prefix="trunkline-bench-", dir=MEMORY_DIRECTORY)
    try:
        database = await db.connect(f"sqlite:///{os.path.join(directory, 'ours.db')}")
        await database.execute(CREATE.format(table="kv"))
        bare = BareSQLiteThread(os.path.join(directory, "bare.db"))
        await bare.call(lambda c: c.execute(CREATE.format(table="kv")))
        on_loop = _open_sqlite(os.path.join(directory, "on_loop.db"))
        on_loop.execute(CREATE.format(table="kv"))
        try:
            return await paired_rounds(
                ours(database, "kv"),
                bare.side(),
                sqlite_on_loop(on_loop),
                {"insert": counts.sqlite, "batch": counts.sqlite // 10, "read": counts.sqlite},
                counts.rounds,
            )
        finally:
            await database.close()
            bare.close()
            on_loop.close()
    finally:
        shutil.rmtree(directory)


async def postgres_figures(url: str, counts: Counts, cpu: int | None) -> dict[str, Figure]:
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(url)
    schema = f"bench_{os.getpid()}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        # Every connection measured carries the schema's name, so that its server process
        # can be found (and put on the benchmark's CPU) once the warm-up has opened them all.
        scoped = f"{url}{'&' if '?' in url else '?'}search_path={schema}&application_name={schema}"
        await admin.execute(f"SET search_path = {schema}")
        for table in ("kv_ours", "kv_bare", "kv_pool"):
            await admin.execute(CREATE.format(table=table))
        database = await db.connect(scoped)
        bare = await asyncpg.connect(scoped)
        pool = await asyncpg.create_pool(scoped, min_size=1, max_size=2)
        try:
            return await paired_rounds(
                ours(database, "kv_ours"),
                bare_asyncpg("bare", bare, "kv_bare"),
                bare_asyncpg("reference", pool, "kv_pool"),
                {
                    "insert": counts.postgres_insert,
                    "batch": counts.postgres_batch,
                    "read": counts.postgres_read,
                },
                counts.rounds,
                # Fresh statistics, so that every side's prepared statement is planned alike.
                before_reads=lambda: admin.execute("ANALYZE kv_ours, kv_bare, kv_pool"),
                after_warm_up=lambda: pin_server_processes(admin, schema, cpu),
            )
        finally:
            await database.close()
            await bare.close()
            await pool.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def pin_server_processes(admin: Any, application_name: str, cpu: int | None) -> None:
    """Put the server processes of the connections measured on ``cpu``, where the server
    runs on this machine and lets us; else say that they run as scheduled."""
    if cpu is None:
        return
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
    )
    try:
        for row in rows:
            os.sched_setaffinity(row["pid"], {cpu})
    except OSError as error:  # another machine's server, or not ours to move
        print(f"PostgreSQL server processes run as scheduled ({error})", file=sys.stderr)


# -- the report ----------------------------------------------------------------------------------


def report(label: str, figure: Figure) -> None:
    ratios = figure.ratios
    print(
        f"{label:<44} {statistics.median(figure.ours):>10,.0f} per s "
        f"bare {statistics.median(figure.bare):>10,.0f}   ratio {figure.ratio:4.2f} "
        f"({min(ratios):4.2f}-{max(ratios):4.2f})   target >= 0.85"
    )


def reference(label: str, figure: Figure) -> None:
    print(f"{label:<44} {statistics.median(figure.reference):>10,.0f} per s (reference)")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    otp.start_node()
    counts = QUICK if args.quick else FULL
    pinnable = hasattr(os, "sched_setaffinity")
    cpu = None if args.unpinned or not pinnable else max(os.sched_getaffinity(0))
    print(
        f"trunkline.db benchmark (uvloop, {'quick' if args.quick else 'full'} run, one "
        f"statement at a time; median of {counts.rounds} paired rounds, lowest-highest in "
        f"brackets; {'as scheduled' if cpu is None else f'all on CPU {cpu}'})"
    )
    if cpu is not None:
        # Before any thread starts: the SQLite threads inherit the loop thread's CPU.
        os.sched_setaffinity(0, {cpu})
    figures: dict[str, Any] = {}
    lite = await sqlite_figures(counts)
    report("SQLite inserts, one per statement", lite["insert"])
    report("SQLite inserts, execute_many x100 (rows)", lite["batch"])
    report("SQLite point reads by primary key", lite["read"])
    reference("  sqlite3 on the loop thread: inserts", lite["insert"])
    reference("  sqlite3 on the loop thread: batch rows", lite["batch"])
    reference("  sqlite3 on the loop thread: reads", lite["read"])
    figures.update(
        sqlite_insert_ratio=lite["insert"].ratio,
        sqlite_batch_insert_ratio=lite["batch"].ratio,
        sqlite_read_ratio=lite["read"].ratio,
    )
    try:
        pg = await postgres_figures(args.postgres, counts, cpu)
    except (OSError, db.DatabaseError) as error:
        print(f"PostgreSQL at {args.postgres}: unreachable ({error}); skipped", file=sys.stderr)
        figures.update(pg_insert_ratio=None, pg_batch_insert_ratio=None, pg_read_ratio=None)
    else:
        report("PostgreSQL inserts, one per statement", pg["insert"])
        report("PostgreSQL inserts, execute_many x100 (rows)", pg["batch"])
        report("PostgreSQL point reads by primary key", pg["read"])
        reference("  asyncpg Pool: inserts", pg["insert"])
        reference("  asyncpg Pool: batch rows", pg["batch"])
        reference("  asyncpg Pool: reads", pg["read"])
        figures.update(
            pg_insert_ratio=pg["insert"].ratio,
            pg_batch_insert_ratio=pg["batch"].ratio,
            pg_read_ratio=pg["read"].ratio,
        )
    return {key: None if value is None else round(value, 3) for key, value in figures.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, a smoke run")
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="leave the threads and server processes on whichever CPU the scheduler picks",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="the PostgreSQL server to measure against",
    )
    print(json.dumps(uvloop.run(main(parser.parse_args()))))
