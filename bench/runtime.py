"""Runtime benchmark: GenServer call/cast, idle memory, DynamicSupervisor start rate.

Each figure is printed beside a raw asyncio baseline measured in the same run, with the ratio,
and the last line is one JSON object so runs can be compared over time::

    .venv/bin/python bench/runtime.py            # the full run (1,000,000 idle servers)
    .venv/bin/python bench/runtime.py --quick    # smaller counts, for a smoke run

Baselines: a "raw" mailbox is a deque plus a future that wakes the owner, the least a process
mailbox can be on asyncio. Round trips are ping-pong between two tasks; one-way messages are a
producer filling the consumer's deque as fast as it can.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from trunkline import otp
from trunkline.otp.dynamic_supervisor import DynamicSupervisor, start_child
from trunkline.otp.supervisor import child_spec


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class RawMailbox:
    __slots__ = ("messages", "waiter")

    def __init__(self) -> None:
        self.messages: deque[Any] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, message: Any) -> None:
        self.messages.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def get(self) -> Any:
        messages = self.messages
        while not messages:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return messages.popleft()


async def raw_roundtrips(n: int) -> float:
    server, client = RawMailbox(), RawMailbox()

    async def serve() -> None:
        while True:
            message = await server.get()
            if message is None:
                return
            client.put(message)

    task = asyncio.get_running_loop().create_task(serve())
    start = time.perf_counter()
    for i in range(n):
        server.put(i)
        await client.get()
    elapsed = time.perf_counter() - start
    server.put(None)
    await task
    return n / elapsed


async def raw_one_way(n: int) -> float:
    box = RawMailbox()
    done = asyncio.get_running_loop().create_future()

    async def consume() -> None:
        for _ in range(n):
            await box.get()
        done.set_result(None)

    asyncio.get_running_loop().create_task(consume())
    start = time.perf_counter()
    for i in range(n):
        box.put(i)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    await done
    return n / (time.perf_counter() - start)


class Echo(otp.GenServer):
    def init(self, arg: Any) -> None:
        self.count = 0

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return request

    def handle_cast(self, request: Any) -> None:
        self.count += 1


class Idle(otp.GenServer):
    pass


async def call_roundtrips(n: int) -> float:
    pid = await Echo.start()
    call = otp.call
    start = time.perf_counter()
    for i in range(n):
        await call(pid, i)
    elapsed = time.perf_counter() - start
    await otp.stop(pid)
    return n / elapsed


async def casts(n: int) -> float:
    pid = await Echo.start()
    cast = otp.cast
    start = time.perf_counter()
    for i in range(n):
        cast(pid, i)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    await otp.call(pid, "sync", timeout=None)
    elapsed = time.perf_counter() - start
    await otp.stop(pid)
    return n / elapsed


async def idle_memory(n: int) -> tuple[float, float]:
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    pids = [await Idle.start() for _ in range(n)]
    started = time.perf_counter() - start
    await asyncio.sleep(0)
    gc.collect()
    per_server = (rss_bytes() - before) / n
    if len(pids) != n or not all(otp.is_alive(p) for p in pids):
        raise RuntimeError("not every idle server stayed alive")
    for pid in pids:
        otp.exit(pid, otp.KILL)
    return per_server, n / started


async def raw_idle_memory(n: int) -> float:
    """A bare task waiting on a raw mailbox: the least an idle process can cost."""
    gc.collect()
    before = rss_bytes()
    loop = asyncio.get_running_loop()
    boxes = [RawMailbox() for _ in range(n)]
    tasks = [loop.create_task(box.get()) for box in boxes]
    await asyncio.sleep(0)
    gc.collect()
    per_task = (rss_bytes() - before) / n
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return per_task


async def start_children(n: int) -> float:
    sup = await DynamicSupervisor.start()
    spec = child_spec(Idle, restart="temporary")
    start = time.perf_counter()
    for _ in range(n):
        await start_child(sup, spec)
    elapsed = time.perf_counter() - start
    await otp.stop(sup, "shutdown", timeout=None)
    return n / elapsed


async def raw_start_tasks(n: int) -> float:
    """Create a task per child and wait for it to signal that it is running."""
    loop = asyncio.get_running_loop()

    async def child(ready: asyncio.Future[None], box: RawMailbox) -> None:
        ready.set_result(None)
        await box.get()

    tasks = []
    start = time.perf_counter()
    for _ in range(n):
        ready = loop.create_future()
        tasks.append(loop.create_task(child(ready, RawMailbox())))
        await ready
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return n / elapsed


def report(label: str, value: float, baseline: float, unit: str, target: str) -> None:
    print(
        f"{label:<34} {value:>14,.0f} {unit:<10} baseline {baseline:>14,.0f}"
        f"  ratio {value / baseline:5.2f}   target {target}"
    )


def best(runs: int, fn: Callable[[], Coroutine[Any, Any, float]]) -> Callable[[], Any]:
    async def measure() -> float:
        return max([await fn() for _ in range(runs)])

    return measure


async def main(args: argparse.Namespace) -> dict[str, Any]:
    otp.start_node()
    n_rt, n_cast, n_idle, n_children = (
        (20_000, 200_000, 50_000, 10_000)
        if args.quick
        else (200_000, 2_000_000, 1_000_000, 100_000)
    )
    runs = 3
    raw_rt = await best(runs, lambda: raw_roundtrips(n_rt))()
    call_rt = await best(runs, lambda: call_roundtrips(n_rt))()
    raw_ow = await best(runs, lambda: raw_one_way(n_cast))()
    cast_rate = await best(runs, lambda: casts(n_cast))()
    raw_start = await best(runs, lambda: raw_start_tasks(n_children))()
    child_rate = await best(runs, lambda: start_children(n_children))()
    # Memory is measured in fresh interpreters: freed memory from the runs above would
    # otherwise be reused and hide what the idle processes cost.
    raw_idle = measure_in_subprocess("raw", min(n_idle, 200_000))[0]
    idle_bytes, idle_start_rate = measure_in_subprocess("genserver", n_idle)

    print(f"trunkline runtime benchmark (uvloop, {'quick' if args.quick else 'full'} run)")
    report("GenServer.call round trips", call_rt, raw_rt, "per s", ">= 0.70 of raw")
    report("GenServer.cast handled", cast_rate, raw_ow, "per s", ">= 1,000,000/s")
    report("DynamicSupervisor.start_child", child_rate, raw_start, "per s", ">= 30,000/s")
    report("idle GenServer (bytes of RSS)", idle_bytes, raw_idle, "bytes", "<= 2,500 B")
    print(f"{'idle GenServers alive at once':<34} {n_idle:>14,} (started {idle_start_rate:,.0f}/s)")
    return {
        "call_per_s": round(call_rt),
        "raw_roundtrip_per_s": round(raw_rt),
        "call_ratio": round(call_rt / raw_rt, 3),
        "cast_per_s": round(cast_rate),
        "raw_one_way_per_s": round(raw_ow),
        "idle_genserver_bytes": round(idle_bytes),
        "raw_idle_task_bytes": round(raw_idle),
        "idle_genservers": n_idle,
        "start_child_per_s": round(child_rate),
        "raw_start_task_per_s": round(raw_start),
    }


def measure_in_subprocess(kind: str, n: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory", kind, "--count", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    per_process, rate = json.loads(out.strip().splitlines()[-1])
    return per_process, rate


async def memory_only(kind: str, n: int) -> tuple[float, float]:
    otp.start_node()
    if kind == "raw":
        return await raw_idle_memory(n), 0.0
    return await idle_memory(n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, a smoke run")
    parser.add_argument("--memory", choices=["raw", "genserver"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(uvloop.run(memory_only(args.memory, args.count))))
    else:
        print(json.dumps(uvloop.run(main(args))))
