"""Two nodes on one database: a shared queue runs each job once and never twice at a time,
retries included; a unique job enqueued from both at once exists once; cancel and pause
reach the other node (through PostgreSQL's notifications; on SQLite they are the node's own).

Each node is its own :class:`~trunkline.jobs.Jobs` on its own connection to the database,
as two processes on two machines would be; they share only the table (and, on PostgreSQL,
the server's notifications).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from job_backends import Backend, eventually, running, wait_for_state

from trunkline import db, jobs, otp

NODES = ("n1", "n2")


@dataclass(frozen=True)
class Run:
    """One execution of a job, as its worker saw it: ticks of the ledger's counter."""

    job: int
    attempt: int
    node: str
    start: int
    end: int


class Ledger:
    """Records every execution of the workers of a test, on whichever node it runs.

    Both nodes run in this process, so one counter orders every start and end of both;
    ``overlaps`` notes any job that started while an execution of it was still running.
    """

    def __init__(self) -> None:
        self.ticks = 0
        self.runs: list[Run] = []
        self.running: Counter[int] = Counter()
        self.overlaps: list[tuple[int, int, str]] = []

    @contextmanager
    def execution(self, job: jobs.Job) -> Iterator[None]:
        assert job.attempted_by is not None
        if self.running[job.id]:
            self.overlaps.append((job.id, job.attempt, job.attempted_by))
        self.running[job.id] += 1
        start = self._tick()
        try:
            yield
        finally:
            self.running[job.id] -= 1
            self.runs.append(Run(job.id, job.attempt, job.attempted_by, start, self._tick()))

    def _tick(self) -> int:
        self.ticks += 1
        return self.ticks

    def by_job(self) -> dict[int, list[Run]]:
        runs: dict[int, list[Run]] = defaultdict(list)
        for run in sorted(self.runs, key=lambda r: r.start):
            runs[run.job].append(run)
        return runs


@asynccontextmanager
async def two_nodes(
    backend: Backend, registry: jobs.WorkerRegistry, **options: Any
) -> AsyncIterator[tuple[Sequence[db.Database], Sequence[jobs.Jobs]]]:
    """Nodes ``n1`` and ``n2``, each on a connection of its own to one fresh database."""
    async with backend.databases(2) as databases, AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(running(database, registry, node=name, **options))
            for database, name in zip(databases, NODES, strict=True)
        ]
        yield databases, nodes


async def start_together(nodes: Sequence[jobs.Jobs], queue: str = "default") -> None:
    """Resume ``queue`` on every node at once: they start on the waiting jobs side by side."""
    await asyncio.gather(*(node.resume(queue, local_only=True) for node in nodes))


async def pause_all(nodes: Sequence[jobs.Jobs], queue: str = "default") -> None:
    for node in nodes:
        await node.pause(queue, local_only=True)


async def stats(database: db.Database, queue: str = "default") -> dict[jobs.State, int]:
    return (await jobs.queue_stats(database)).get(queue, dict.fromkeys(jobs.STATES, 0))


async def all_ended(database: db.Database, count: int) -> bool:
    counts = await stats(database)
    return counts["completed"] + counts["discarded"] + counts["cancelled"] == count


async def all_jobs(database: db.Database, count: int) -> list[jobs.Job]:
    listed = [
        job
        for state in jobs.STATES
        for job in await jobs.list_jobs(database, state=state, limit=count + 1)
    ]
    assert len(listed) == count
    return sorted(listed, key=lambda job: job.id)


# -- a shared queue ------------------------------------------------------------------------------


async def test_two_nodes_run_each_job_of_a_shared_queue_once(backend: Backend) -> None:
    registry, ledger = jobs.WorkerRegistry(), Ledger()
    count, limit = 1500, 20

    @registry.worker(name="work")
    async def work(job: jobs.Job) -> None:
        with ledger.execution(job):
            for _ in range(job.args["yields"]):
                await asyncio.sleep(0)

    rng = random.Random(1)
    async with two_nodes(backend, registry, queues={"default": limit}) as (databases, nodes):
        # Paused while the jobs go in, then resumed together: on SQLite a node hears only
        # its own connection's wake-ups, and n2 would wait for its poll while n1 ran them.
        await pause_all(nodes)
        stored = await jobs.enqueue_many(
            databases[0], [work.new({"yields": rng.randrange(4)}) for _ in range(count)]
        )
        await start_together(nodes)
        await eventually(lambda: all_ended(databases[1], count), f"{count} jobs end")
        ended = await all_jobs(databases[1], count)
        assert await stats(databases[0]) == {**dict.fromkeys(jobs.STATES, 0), "completed": count}

    assert ledger.overlaps == []
    runs = ledger.by_job()
    assert sorted(runs) == [job.id for job in stored]  # every job ran ...
    assert all(len(r) == 1 for r in runs.values())  # ... exactly once
    per_node = Counter(r[0].node for r in runs.values())
    assert set(per_node) == set(NODES)
    assert min(per_node.values()) >= limit  # both took their share, not a straggler's
    for job in ended:
        [run] = runs[job.id]
        assert (job.state, job.attempt, job.attempted_by, job.errors) == (
            "completed",
            1,
            run.node,
            [],
        )


def fails(job: jobs.Job) -> bool:
    """Whether this attempt of this job fails: random, and the same on every run."""
    return random.Random(f"{job.id}:{job.attempt}").random() < 0.5


async def test_retries_on_two_nodes_never_overlap_and_end_as_their_attempts_say(
    backend: Backend,
) -> None:
    registry, ledger = jobs.WorkerRegistry(), Ledger()
    count, limit, max_attempts = 600, 20, 3

    @registry.worker(name="flaky", max_attempts=max_attempts, backoff=lambda job: 0.01)
    async def flaky(job: jobs.Job) -> None:
        with ledger.execution(job):
            await asyncio.sleep(0)
            if fails(job):
                raise ConnectionError(f"attempt {job.attempt} of {job.id} failed")

    async with two_nodes(backend, registry, queues={"default": limit}) as (databases, nodes):
        await pause_all(nodes)
        await jobs.enqueue_many(databases[0], [flaky.new({"n": n}) for n in range(count)])
        await start_together(nodes)
        await eventually(lambda: all_ended(databases[0], count), f"{count} jobs end")
        ended = await all_jobs(databases[0], count)

    assert ledger.overlaps == []
    runs = ledger.by_job()
    nodes_seen: set[str] = set()
    outcomes: Counter[str] = Counter()
    for job in ended:
        executions = runs[job.id]
        # One execution per attempt, one after the other, each begun after the last ended.
        assert [r.attempt for r in executions] == list(range(1, len(executions) + 1))
        for before, after in itertools.pairwise(executions):
            assert before.end < after.start
        # The attempts that fail are known: the job ends as they say.
        failed = 0
        while failed < max_attempts and fails(replace(job, attempt=failed + 1)):
            failed += 1
        expected = "discarded" if failed == max_attempts else "completed"
        assert (job.state, job.attempt) == (expected, min(failed + 1, max_attempts))
        assert len(executions) == job.attempt
        assert [e["attempt"] for e in job.errors] == list(range(1, failed + 1))
        assert [e["node"] for e in job.errors] == [r.node for r in executions[:failed]]
        nodes_seen.update(r.node for r in executions)
        outcomes[job.state] += 1
    assert nodes_seen == set(NODES)
    assert outcomes["completed"] > 0
    assert outcomes["discarded"] > 0


# -- unique jobs ---------------------------------------------------------------------------------

UNIQUE = jobs.Unique(period_s=None)


async def copies(database: db.Database, key: str | None) -> int:
    count: int = await database.fetch_val(
        f"SELECT count(*) FROM {jobs.TABLE} WHERE unique_key = $1", key
    )
    return count


def one_winner(pair: Sequence[jobs.Job]) -> jobs.Job:
    """The job both enqueuers got: inserted by one, found as a conflict by the other."""
    assert sorted(job.conflict for job in pair) == [False, True]
    assert pair[0].id == pair[1].id
    assert pair[0].unique_key == pair[1].unique_key
    return pair[0]


async def test_a_unique_job_enqueued_from_both_nodes_at_once_exists_once(
    backend: Backend,
) -> None:
    async with backend.databases(2) as databases:
        winners: Counter[int] = Counter()
        for n in range(40):
            order = [0, 1] if n % 2 else [1, 0]  # who asks first
            pair = await asyncio.gather(
                *(jobs.enqueue(databases[i], "digest", {"user": n}, unique=UNIQUE) for i in order)
            )
            job = one_winner(pair)
            assert await copies(databases[0], job.unique_key) == 1
            winners[order[0] if not pair[0].conflict else order[1]] += 1
        assert set(winners) == {0, 1}  # each node inserted some, and found the others'
        assert await stats(databases[1]) == {**dict.fromkeys(jobs.STATES, 0), "available": 40}


async def test_a_unique_job_enqueued_in_transactions_of_both_nodes_exists_once(
    backend: Backend,
) -> None:
    async def in_transaction(database: db.Database, args: dict[str, int]) -> jobs.Job:
        async with database.transaction() as tx:
            job = await jobs.enqueue(tx, "digest", args, unique=UNIQUE)
            await asyncio.sleep(0.5)  # the caller's work goes on; the key stays taken
            await tx.fetch_val("SELECT 1")
            return job

    async with backend.databases(2) as databases:
        for n in range(10):
            pair = await asyncio.gather(*(in_transaction(d, {"user": n}) for d in databases))
            job = one_winner(pair)
            assert await copies(databases[0], job.unique_key) == 1
            assert (await jobs.get_job(databases[1], job.id)) is not None


async def test_a_unique_job_whose_transaction_rolls_back_leaves_the_key_to_the_other_node(
    backend: Backend,
) -> None:
    class Undone(Exception):
        pass

    async def rolled_back(database: db.Database) -> jobs.Job:
        enqueued: list[jobs.Job] = []
        with contextlib.suppress(Undone):
            async with database.transaction() as tx:
                enqueued.append(await jobs.enqueue(tx, "digest", {"user": 1}, unique=UNIQUE))
                await asyncio.sleep(0.5)
                raise Undone
        return enqueued[0]

    async def later(database: db.Database) -> jobs.Job:
        await asyncio.sleep(0.1)  # asks while the first holds the key
        return await jobs.enqueue(database, "digest", {"user": 1}, unique=UNIQUE)

    async with backend.databases(2) as databases:
        undone, kept = await asyncio.gather(rolled_back(databases[0]), later(databases[1]))
        assert (undone.conflict, kept.conflict) == (False, False)
        assert undone.unique_key == kept.unique_key
        # The one row is the second node's (SQLite may give it the id the first one lost).
        assert await copies(databases[0], kept.unique_key) == 1
        assert await jobs.list_jobs(databases[0]) == [kept]


async def test_unique_jobs_enqueued_many_at_once_in_opposite_orders_exist_once(
    backend: Backend,
) -> None:
    async with backend.databases(2) as databases:
        for n in range(10):
            batch = [
                jobs.new_job("digest", {"user": n, "part": p}, unique=UNIQUE) for p in range(4)
            ]
            results = await asyncio.gather(
                jobs.enqueue_many(databases[0], batch),
                jobs.enqueue_many(databases[1], list(reversed(batch))),
            )
            mine, theirs = results[0], list(reversed(results[1]))
            for pair in zip(mine, theirs, strict=True):
                job = one_winner(pair)
                assert await copies(databases[0], job.unique_key) == 1
        assert (await stats(databases[0]))["available"] == 40


# -- signals across nodes ------------------------------------------------------------------------


async def test_cancelling_on_one_node_a_job_running_on_the_other(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    started: dict[int, otp.Pid] = {}

    @registry.worker(name="long")
    async def long(job: jobs.Job) -> str:
        started[job.id] = otp.self()
        await asyncio.sleep(job.args["seconds"])
        return "done"

    async with (
        backend.databases(2) as (db1, db2),
        running(db1, registry, node="n1", queues={}) as web,
        running(db2, registry, node="n2", queues={"default": 1}) as worker,
    ):
        job = await web.enqueue(long, {"seconds": 20})
        executing = await wait_for_state(db1, job.id, "executing")
        assert executing.attempted_by == "n2"
        await eventually(lambda: _started(started, job.id), "it starts on n2")
        pid = started[job.id]
        assert [p for p, _ in worker.running.lookup(job.id)] == [pid]

        cancelled = await web.cancel_job(job.id)
        assert cancelled is not None
        assert cancelled.state == "cancelled"
        # PostgreSQL: the signal reaches n2's notifier, which checks the row and stops the
        # job. SQLite: notifications are the connection's own, so n2's notifier finds the
        # cancelled job on its poll (1 s), well before the job's own end (20 s).
        reach_s = 1 if backend.name == "postgresql" else 3
        await eventually(lambda: _dead(pid), "n2 stops the job", timeout_s=reach_s)
        await eventually(lambda: _idle(worker), "n2's slot comes free")
        after = await wait_for_state(db2, job.id, "cancelled")
        assert (after.completed_at, after.attempt) == (None, 1)
        assert after.cancelled_at is not None

        # n2's only slot is free again: the next job runs there.
        next_job = await web.enqueue(long, {"seconds": 1})
        assert (await wait_for_state(db1, next_job.id, "completed")).attempted_by == "n2"


async def test_pausing_on_one_node_pauses_the_other(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker(name="quick")
    async def quick(job: jobs.Job) -> None:
        pass

    # PostgreSQL: the signal reaches n2 at once, long before its poll. SQLite: notifications
    # stay in n1's connection; n2 reads the stored settings on its poll.
    poll_s = 10.0
    reach_s = 3.0 if backend.name == "postgresql" else poll_s + 5
    options = {"queues": {"default": 5}, "poll_interval_s": poll_s, "stage_interval_s": 1}
    async with two_nodes(backend, registry, **options) as ((db1, db2), (n1, n2)):
        await n1.pause("default")
        assert (await n1.queue_info("default")).paused  # at once where it was asked
        await eventually(lambda: _paused(n2, True), "n2 pauses", timeout_s=reach_s)
        job = await n2.enqueue(quick, {})
        await asyncio.sleep(poll_s + 5)  # wake-ups and polls: neither node fetches
        assert (await jobs.get_job(db1, job.id)).state == "available"  # type: ignore[union-attr]

        await n1.resume("default", local_only=True)
        assert (await wait_for_state(db2, job.id, "completed")).attempted_by == "n1"
        assert (await n2.queue_info("default")).paused  # local_only: n2 stays paused

        await n1.resume("default")  # everywhere
        await eventually(lambda: _paused(n2, False), "n2 resumes", timeout_s=reach_s)
        await n1.pause("default", local_only=True)
        job = await n2.enqueue(quick, {})
        assert (await wait_for_state(db1, job.id, "completed")).attempted_by == "n2"


async def _started(started: dict[int, otp.Pid], job_id: int) -> bool:
    return job_id in started


async def _dead(pid: otp.Pid) -> bool:
    return not otp.is_alive(pid)


async def _idle(node: jobs.Jobs) -> bool:
    return (await node.queue_info("default")).running == 0


async def _paused(node: jobs.Jobs, paused: bool) -> bool:
    return (await node.queue_info("default")).paused is paused
