"""``db.Batches``: a lone call runs at once; calls made while a batch runs go together in
the next; each caller gets its own result, or its batch's error."""

from __future__ import annotations

import asyncio

import pytest

from trunkline import db


class Doubler:
    """A ``run`` that doubles each item, records its batches, and can be held or fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None
        self.entered = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.entered.set()
        await self.gate.wait()
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return [2 * item for item in items]


async def started(tasks: list[asyncio.Task[int]]) -> None:
    """Let ``tasks`` run up to their first wait."""
    for _ in tasks:
        await asyncio.sleep(0)


async def test_a_lone_call_runs_at_once() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)
    assert await batches.call(21) == 42
    assert run.batches == [[21]]


async def test_calls_made_while_a_batch_runs_go_together_in_the_next() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)
    run.gate.clear()
    first = asyncio.ensure_future(batches.call(1))
    await run.entered.wait()  # the first batch runs, held
    rest = [asyncio.ensure_future(batches.call(n)) for n in range(2, 7)]
    await started(rest)
    run.gate.set()
    assert await first == 2
    assert [await task for task in rest] == [4, 6, 8, 10, 12]
    assert run.batches == [[1], [2, 3, 4, 5, 6]]


async def test_max_batch_splits_what_waits() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run, max_batch=2)
    run.gate.clear()
    first = asyncio.ensure_future(batches.call(0))
    await run.entered.wait()
    rest = [asyncio.ensure_future(batches.call(n)) for n in range(1, 6)]
    await started(rest)
    run.gate.set()
    assert [await task for task in [first, *rest]] == [0, 2, 4, 6, 8, 10]
    assert run.batches == [[0], [1, 2], [3, 4], [5]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)
    run.gate.clear()
    first = asyncio.ensure_future(batches.call(1))
    await run.entered.wait()
    run.fail_with = db.DatabaseError("the database went away")
    held = [asyncio.ensure_future(batches.call(n)) for n in (2, 3)]
    await started(held)
    run.gate.set()
    with pytest.raises(db.DatabaseError, match="went away"):
        await first
    assert [await task for task in held] == [4, 6]  # the next batch is not touched
    assert await batches.call(5) == 10  # and the batches go on


async def test_a_caller_that_gave_up_before_its_batch_is_left_out() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)
    run.gate.clear()
    first = asyncio.ensure_future(batches.call(1))
    await run.entered.wait()
    quitter = asyncio.ensure_future(batches.call(2))
    stayer = asyncio.ensure_future(batches.call(3))
    await started([quitter, stayer])
    quitter.cancel()
    run.gate.set()
    assert await first == 2
    assert await stayer == 6
    assert quitter.cancelled()
    assert run.batches == [[1], [3]]


async def test_a_run_that_miscounts_its_results_fails_its_callers() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batches: db.Batches[int, int] = db.Batches(short)
    with pytest.raises(RuntimeError, match="a batch of 1 returned 0 results"):
        await batches.call(1)
    # Not stuck: the next call gets a batch of its own.
    with pytest.raises(RuntimeError, match="a batch of 1 returned 0 results"):
        await batches.call(2)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        db.Batches(Doubler(), max_batch=0)


async def test_lanes_run_that_many_batches_at_once() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run, lanes=2)
    run.gate.clear()
    calls = [asyncio.ensure_future(batches.call(n)) for n in range(1, 4)]
    await started(calls)  # the first lane takes all three
    late = [asyncio.ensure_future(batches.call(n)) for n in range(4, 6)]
    await started(late)  # the second lane takes these, while the first is held
    assert run.batches == [[1, 2, 3], [4, 5]]
    run.gate.set()
    assert [await task for task in [*calls, *late]] == [2, 4, 6, 8, 10]
    # Both lanes free again: the next call runs at once.
    assert await batches.call(6) == 12
    assert run.batches[-1] == [6]


async def test_a_call_right_after_a_lane_ends_is_not_left_waiting() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)
    for n in range(20):
        assert await batches.call(n) == 2 * n  # each as the last lane just ended


def test_lanes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lanes"):
        db.Batches(Doubler(), lanes=0)


def test_batches_outlive_the_loop_a_lane_ran_on() -> None:
    run = Doubler()
    batches: db.Batches[int, int] = db.Batches(run)

    async def held_when_the_loop_closes() -> None:
        run.gate.clear()
        call = asyncio.ensure_future(batches.call(1))
        await run.entered.wait()
        call.cancel()  # the lane's task stays pending on this loop, which then closes

    first = asyncio.new_event_loop()
    first.run_until_complete(held_when_the_loop_closes())
    first.close()

    async def on_a_new_loop() -> int:
        run.gate = asyncio.Event()
        run.gate.set()
        return await batches.call(2)

    second = asyncio.new_event_loop()
    try:
        assert second.run_until_complete(on_a_new_loop()) == 4
    finally:
        second.close()
