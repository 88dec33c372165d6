"""Stage benchmark: events/s through producer -> consumer, against an asyncio.Queue pipeline.

Both pipelines move the same number of integers, in the same run, on uvloop:

- **stage**: a producer whose ``handle_demand(n)`` returns ``n`` integers and a consumer
  subscribed with ``max_demand`` 1000 whose ``handle_events`` counts them;
- **queue**: one task ``put``-ting the integers into an ``asyncio.Queue(maxsize=1000)`` and
  one task ``get``-ting and counting them: the back-pressured pipeline asyncio gives you.

A third figure runs the stage pipeline with ``max_demand`` 2 (batches of one event):
what one batch costs the stage machinery (two messages, two callbacks, two task switches), the
price of choosing small batches.

Each figure is printed beside the baseline with the ratio; the last line is one JSON object::

    .venv/bin/python bench/stage.py            # 5,000,000 events
    .venv/bin/python bench/stage.py --quick    # 500,000, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import uvloop

from trunkline import otp
from trunkline.otp.stage import ConsumerInit, ProducerInit, Stage, Subscription


class Numbers(Stage):
    def init(self, limit: int) -> ProducerInit:
        self.next = 0
        self.limit = limit
        return ProducerInit()

    def handle_demand(self, demand: int) -> list[int]:
        start = self.next
        stop = min(start + demand, self.limit)
        self.next = stop
        return list(range(start, stop))


class Count(Stage):
    def init(self, arg: tuple[otp.Pid, int, int, asyncio.Future[float]]) -> ConsumerInit:
        producer, max_demand, self.limit, self.done = arg
        self.count = 0
        return ConsumerInit(subscribe_to=[(producer, {"max_demand": max_demand})])

    def handle_events(self, events: list[int], from_: Subscription) -> None:
        self.count += len(events)
        if self.count >= self.limit:
            self.done.set_result(time.perf_counter())


async def stage_pipeline(n: int, max_demand: int = 1000) -> float:
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    start = time.perf_counter()
    producer = await Numbers.start(n)
    consumer = await Count.start((producer, max_demand, n, done))
    finished = await done
    await otp.stop(consumer)
    await otp.stop(producer)
    return n / (finished - start)


async def queue_pipeline(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1000)
    counted = 0

    async def put() -> None:
        for i in range(n):
            await queue.put(i)

    async def get() -> None:
        nonlocal counted
        while counted < n:
            await queue.get()
            counted += 1

    start = time.perf_counter()
    await asyncio.gather(put(), get())
    elapsed = time.perf_counter() - start
    assert counted == n
    return n / elapsed


async def main(n: int) -> dict[str, Any]:
    otp.start_node()
    await stage_pipeline(n // 10)  # warm up
    stage = await stage_pipeline(n)
    queue = await queue_pipeline(n)
    small = await stage_pipeline(n // 20, max_demand=2)
    return {
        "events": n,
        "stage_events_per_s": round(stage),
        "queue_events_per_s": round(queue),
        "stage_vs_queue": round(stage / queue, 2),
        "stage_max_demand_2_events_per_s": round(small),
        "stage_max_demand_2_vs_queue": round(small / queue, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500,000 events instead of 5M")
    parser.add_argument("--events", type=int, default=None, help="how many events to move")
    args = parser.parse_args()
    n = args.events or (500_000 if args.quick else 5_000_000)
    result = uvloop.run(main(n))
    print(f"events moved:            {n:>12,}")
    print(f"stage (max_demand 1000): {result['stage_events_per_s']:>12,} events/s")
    print(f"asyncio.Queue(1000):     {result['queue_events_per_s']:>12,} events/s")
    print(f"stage / queue:           {result['stage_vs_queue']:>12}x")
    small = result["stage_max_demand_2_events_per_s"]
    print(f"stage (max_demand 2):    {small:>12,} events/s, ", end="")
    print(f"{result['stage_max_demand_2_vs_queue']}x the queue: batch what you can")
    print(json.dumps(result))
