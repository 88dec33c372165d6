"""Chat server benchmark: ``trunkline serve`` against a bare ``websockets`` broadcast server,
in the same run, with the same load generator, each figure beside its baseline and issue's
target.

    .venv/bin/python bench/chat.py            # the full run (3 to 5 minutes)
    .venv/bin/python bench/chat.py --quick    # 1,000 connections, short steps: a smoke run
    .venv/bin/python bench/chat.py --postgres postgresql://postgres@127.0.0.1:5432/test

Two servers, each a subprocess on 127.0.0.1: the node (``trunkline serve`` on a SQLite
file, its chat limits raised through ``TRUNKLINE_CHAT_*`` so that none caps the load: rate,
idle timeout, outbound queue) and the **raw** server (``bench/chat_raw.py``: a client's text
frame goes, untouched, to the other clients of its room through ``websockets.broadcast``;
nothing parsed, stored or acknowledged): the floor of what Python does per delivery. The
load comes from processes of their own (``bench/chat_load.py``: aiohttp clients on uvloop).

Accounts are seeded before the node starts, in this process, through trunkline's own
functions (migrations as the node applies them, then ``chat.register`` and ``chat.login``
with the cheapest argon2 parameters, ``chat.create_room`` and ``chat.join``, in transactions
of a few hundred), rather than through the HTTP API, where each account costs a full argon2
hash.

The figures, and what each is compared with:

- **Bytes per connection**: the server's VmRSS once 10,000 clients are connected (on the
  node: authenticated, each joined to a room of 10), minus its VmRSS before they connect
  (after a warm-up of 100 connections that sent a message each and left), divided by
  10,000. Baseline: the raw server's, measured the same way. Target: at most 20 KiB.
- **Fan-out deliveries/s**, two shapes: one room of 1,000 members, and 100 rooms of 10. Every
  member is joined and sends in turn, the total rate fixed for a step of a few seconds; a
  *delivery* is a message received by a member other than its sender (the node also stores
  the message and answers the sender, whose reply carries it: work the raw server does not
  do). Latency is send -> receive by every recipient (each body carries its
  sender's ``time.monotonic()``). The rate doubles step by step until a step fails, then
  bisects four times between the last step that passed and the one that failed (on a log
  scale, so the best rate is found to within 4.4%: steps a quarter-octave apart, 19%, made
  the ratio of two servers jump by as much); a step passes when its p99 is under 100 ms,
  it lost nothing (99.9% of the deliveries arrive), and the generators kept the rate. A
  step that fails is run once more before it counts. The figure is the deliveries/s of the
  best step that passed. Baseline: the raw server, same shapes, same generator. The two
  servers' clients are connected at once and their searches take turns, a step (and its
  retry) each: this machine's speed was seen to drift by a third over a few minutes, and a
  search of one server after the other's measured the drift as much as the servers.
  Target: a ratio of at least 0.80 in both shapes. Printed too: the server's CPU time per
  delivery at that step, which does not depend on what else limited the rate.
- **p99** at the node's best step (the shape of the lower ratio). Target: under 100 ms.
- **Acknowledgement p99**: send -> the reply to it (which the node sends once the message is
  stored), in rooms of 10 (where the most messages a second are stored, so where the
  database weighs most) at half the best rate found there, in steady state: the clients,
  connected afresh, first send at that rate for a second (not counted), as every fan-out
  search starts with a step at a low rate. Target: at most 20 ms.

Each step prints the CPU the server and the load generators used, and each search says what
stopped it: the server's CPU, the whole machine (the generators spend about as much CPU per
delivery as a server does, so on a small machine they share the limit), or neither (the
server waits on something, one thing at a time). The pids are printed, to attach a profiler
(``py-spy record --pid``). The SQLite file is on ``/dev/shm`` where there is one
(``--database-dir`` to choose), with the driver's default ``synchronous=full``; with
``--postgres`` the node stores on that server instead, in a schema of its own. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import argon2
import asyncpg  # type: ignore[import-untyped]

from chat_processes import (
    Generators,
    Processes,
    Server,
    cpu_s,
    rss_bytes,
    start_node,
    start_raw,
)
from trunkline import chat, db
from trunkline.otp.testing import run
from trunkline.server import NodeContext, load_settings

MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
PASSWORD = "bench password"
SEED_BATCH = 500
P99_LIMIT_MS = 100.0
DELIVERED_AT_LEAST = 0.999
RATE_KEPT_AT_LEAST = 0.97
DRAIN_MAX_S = 15.0
MIN_DELIVERIES_PER_S = 100  # a search that fails below this gives up
WARM_UP_CONNECTIONS = 100

# The node's limits, raised so that none of them is what the benchmark measures.
NODE_ENVIRONMENT = {
    "TRUNKLINE_LOG_LEVEL": "warning",  # no access log line per socket
    "TRUNKLINE_SHUTDOWN_GRACE_S": "2",
    "TRUNKLINE_CHAT_RATE_PER_S": "1000000",
    "TRUNKLINE_CHAT_RATE_BURST": "1000000",
    "TRUNKLINE_CHAT_IDLE_TIMEOUT_S": "3600",
    "TRUNKLINE_CHAT_ROOM_IDLE_S": "3600",
    "TRUNKLINE_CHAT_MAX_OUTBOUND_BYTES": str(256 << 20),
}

# The targets.
TARGETS = {
    "bytes_per_connection": 20 * 1024,
    "fanout_ratio": 0.80,
    "p99_ms": P99_LIMIT_MS,
    "ack_p99_ms": 20.0,
}


@dataclass(frozen=True)
class Counts:
    connections: int
    big_room: int  # members of the one big room
    small_rooms: int  # rooms of ROOM_SIZE in the fan-out
    step_s: float
    fine_steps: int  # bisections after the doubling (each halves the gap); 0: doubling only
    retries: int  # times a failing step is run again before it counts
    start_deliveries_per_s: float  # the first step's
    workers: int


ROOM_SIZE = 10
FULL = Counts(
    connections=10_000,
    big_room=1_000,
    small_rooms=100,
    step_s=3.0,
    fine_steps=4,
    retries=1,
    start_deliveries_per_s=4_000,
    workers=2,
)
QUICK = Counts(
    connections=1_000,
    big_room=200,
    small_rooms=20,
    step_s=0.5,
    fine_steps=0,
    retries=0,
    start_deliveries_per_s=16_000,
    workers=2,
)


# -- seeding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    tokens: list[str]  # by user index
    big_room: int  # users 0 .. big_room members - 1
    small_rooms: list[int]  # user i is in small_rooms[i // ROOM_SIZE]

    def small_room(self, user: int) -> int:
        return self.small_rooms[user // ROOM_SIZE]


async def seed(url: str, counts: Counts) -> Seed:
    """Users, their tokens and rooms, through the chat functions, a few hundred a transaction."""
    cheap = chat.Passwords(argon2.profiles.CHEAPEST)
    n = counts.connections
    async with db.connect(url) as database:
        # Exactly the node's migrations: it finds nothing left to apply when it starts.
        await database.migrate(NodeContext(load_settings(env={})).migrations)
        users: list[int] = []
        tokens: list[str] = []
        for start in range(0, n, SEED_BATCH):
            async with database.transaction() as tx:
                for i in range(start, min(n, start + SEED_BATCH)):
                    name = f"user{i:05d}"
                    user = await chat.register(tx, name, PASSWORD, f"User {i}", passwords=cheap)
                    users.append(user.id)
                    login = await chat.login(tx, name, PASSWORD, passwords=cheap)
                    tokens.append(login.token)
        big = await chat.create_room(database, users[0], "fan-out")
        small = [
            (await chat.create_room(database, users[r * ROOM_SIZE], f"room {r}")).id
            for r in range(n // ROOM_SIZE)
        ]
        joins = [(big.id, users[i]) for i in range(1, counts.big_room)]
        joins += [(small[i // ROOM_SIZE], users[i]) for i in range(n) if i % ROOM_SIZE]
        for start in range(0, len(joins), SEED_BATCH):
            async with database.transaction() as tx:
                for room_id, user_id in joins[start : start + SEED_BATCH]:
                    await chat.join(tx, room_id, user_id)
    return Seed(tokens, big.id, small)


# -- measurements --------------------------------------------------------------------------------


def percentile_ms(histogram: dict[int, int], fraction: float) -> float:
    """The upper edge of the 0.1 ms bucket holding that fraction of the samples."""
    total = sum(histogram.values())
    if total == 0:
        return float("nan")
    rank, seen = fraction * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) / 10
    return (max(histogram) + 1) / 10


def merged(replies: list[dict[str, Any]], key: str) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for reply in replies:
        for bucket, count in reply[key].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    return histogram


@dataclass(frozen=True)
class Step:
    rate: float  # messages a second, all senders
    step_s: float
    sent: int
    expected: int
    received: int
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    server_cpu: float  # of one core
    load_cpu: float
    errors: int
    first_error: str | None
    kept_rate: bool  # the generators sent (nearly) all they were asked to

    @property
    def server_us_per_delivery(self) -> float:
        """The server's CPU time per delivery (the step's CPU over its deliveries)."""
        return self.server_cpu / self.deliveries_per_s * 1e6

    @property
    def passed(self) -> bool:
        return (
            self.kept_rate
            and self.p99_ms < P99_LIMIT_MS
            and self.received >= DELIVERED_AT_LEAST * self.expected
            and self.errors == 0
        )


class Bench:
    def __init__(self, counts: Counts, generators: Generators) -> None:
        self.counts = counts
        self.generators = generators

    def step(self, server: Server, rate: float, recipients: int, step_s: float) -> Step:
        """Send ``rate`` messages a second for ``step_s``; what was delivered, how fast."""
        generators = self.generators
        group = server.name
        sizes = generators.sizes[group]
        clients = sum(sizes)
        t0 = time.monotonic() + 0.2
        t1 = t0 + step_s
        generators.send(
            [
                {"op": "run", "group": group, "rate": rate * size / clients, "t0": t0, "t1": t1}
                for size in sizes
            ]
        )
        time.sleep(max(0.0, t0 - time.monotonic()))
        server_cpu, load_cpu, wall = cpu_s(server.pid), generators.cpu_s(), time.monotonic()
        replies = generators.receive()
        wall = time.monotonic() - wall
        server_cpu = (cpu_s(server.pid) - server_cpu) / wall
        load_cpu = (generators.cpu_s() - load_cpu) / wall
        sent = sum(reply["sent"] for reply in replies)
        expected = sent * recipients
        acks_expected = sent if server.name == "trunkline" else 0
        # Drain: until everything arrived, or nothing more for a second.
        deadline = time.monotonic() + DRAIN_MAX_S
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            stats = generators.all({"op": "stats", "group": group})
            received = sum(s["received"] for s in stats)
            acks = sum(s["acks"] for s in stats)
            if received >= expected and acks >= acks_expected:
                break
            if received + acks != last:
                last, quiet_since = received + acks, time.monotonic()
            elif time.monotonic() - quiet_since > 1.0:
                break
            time.sleep(0.02)
        collected = generators.all({"op": "collect", "group": group})
        latency = merged(collected, "latency")
        ack_latency = merged(collected, "ack_latency")
        received = sum(c["received"] for c in collected)
        errors = sum(c["errors"] for c in collected) + sum(c["dropped"] for c in collected)
        first_error = next((c["first_error"] for c in collected if c["first_error"]), None)
        if first_error is None and any(c["dropped"] for c in collected):
            first_error = "a client's connection was closed by the server"
        return Step(
            rate=rate,
            step_s=step_s,
            sent=sent,
            expected=expected,
            received=received,
            deliveries_per_s=received / step_s,
            p50_ms=percentile_ms(latency, 0.50),
            p99_ms=percentile_ms(latency, 0.99),
            ack_p50_ms=percentile_ms(ack_latency, 0.50),
            ack_p99_ms=percentile_ms(ack_latency, 0.99),
            server_cpu=server_cpu,
            load_cpu=load_cpu,
            errors=errors,
            first_error=first_error,
            kept_rate=sent >= RATE_KEPT_AT_LEAST * rate * step_s,
        )

    def report_step(self, label: str, step: Step) -> None:
        if not step.kept_rate:
            verdict = "FAILED (the generators fell behind)"
        elif step.passed:
            verdict = "ok"
        else:
            verdict = "FAILED"
        ack = f" ack p99 {step.ack_p99_ms:6.1f} ms" if step.ack_p99_ms == step.ack_p99_ms else ""
        print(
            f"  {label:<20} {step.rate:>9,.1f} msg/s -> {step.deliveries_per_s:>9,.0f} deliveries/s"
            f"  p50 {step.p50_ms:6.1f} ms  p99 {step.p99_ms:6.1f} ms{ack}"
            f"  cpu server {step.server_cpu:4.0%} load {step.load_cpu:4.0%}  {verdict}",
            flush=True,
        )
        if not step.passed:
            print(
                f"    sent {step.sent:,} of {step.rate * step.step_s:,.0f}; received "
                f"{step.received:,} of {step.expected:,}",
                flush=True,
            )
        if step.errors:
            print(f"    {step.errors} errors, the first: {step.first_error}", flush=True)

    def attempt(self, server: Server, label: str, rate: float, recipients: int) -> Step:
        """A step at ``rate``, reported; one that fails is run again before it counts (the
        machine may be shared: one pause elsewhere should not end a search)."""
        step = self.step(server, rate, recipients, self.counts.step_s)
        self.report_step(label, step)
        for _ in range(self.counts.retries):
            if step.passed:
                break
            step = self.step(server, rate, recipients, self.counts.step_s)
            self.report_step(f"{label} again", step)
        return step

    def searches(self, servers: Sequence[Server], shape: str, room_size: int) -> dict[str, Found]:
        """Each server's best step, the servers' steps taken in turn: a shared machine whose
        speed drifts over minutes (here it did, by a third) then slows both alike, where one
        server's whole search and then the other's compared two moments as much as two
        servers."""
        searching = {
            server.name: self._search(server, f"{server.name} {shape}", room_size)
            for server in servers
        }
        found: dict[str, Found] = {}
        while searching:
            for name, search in list(searching.items()):
                try:
                    next(search)
                except StopIteration as done:
                    found[name] = done.value
                    del searching[name]
        return found

    def _search(self, server: Server, label: str, room_size: int) -> Generator[None, None, Found]:
        """The best step that passes: doubling the rate, then bisecting above the best; it
        yields after each attempt, so that another search may take its turn."""
        recipients = room_size - 1
        rate = self.counts.start_deliveries_per_s / recipients
        best: Step | None = None
        while True:
            failed = self.attempt(server, label, rate, recipients)
            yield
            if not failed.passed:
                break
            best, rate = failed, rate * 2
        while best is None:  # the first step failed: halve until one passes
            rate /= 2
            if rate * recipients < MIN_DELIVERIES_PER_S:
                raise RuntimeError(f"{label}: even {rate * 2:,.1f} messages/s fails")
            step = self.attempt(server, label, rate, recipients)
            yield
            if step.passed:
                best = step
            else:
                failed = step
        # Bisect (on a log scale) between the best step that passed and the first that
        # failed above it: each step halves the gap, from an octave to 2**(1/2**fine_steps).
        low, high = best.rate, failed.rate
        for _ in range(self.counts.fine_steps):
            rate = (low * high) ** 0.5
            step = self.attempt(server, label, rate, recipients)
            yield
            if step.passed:
                low = rate
                if step.deliveries_per_s > best.deliveries_per_s:
                    best = step
            else:
                high, failed = rate, step
        found = Found(best, failed)
        print(f"  {label}: {found.limit()}", flush=True)
        return found


@dataclass(frozen=True)
class Found:
    """What a search found: the best step that passed, and the first that failed above it."""

    best: Step
    failed: Step

    def limit(self) -> str:
        """What stopped the rate going higher, as the CPU figures of the failing step say."""
        failed, cores = self.failed, os.cpu_count() or 1
        if not failed.kept_rate:
            return "the load generators could not send faster"
        machine_full = failed.server_cpu + failed.load_cpu >= 0.85 * cores
        if failed.server_cpu >= 0.9:
            return f"the server's CPU ({failed.server_cpu:.0%} of a core) set the limit" + (
                f"; the machine's {cores} cores were full too (load generators "
                f"{failed.load_cpu:.0%})"
                if machine_full
                else ""
            )
        if machine_full:
            return (
                f"the machine's {cores} cores set the limit (server {failed.server_cpu:.0%}, "
                f"load generators {failed.load_cpu:.0%}): the server had some CPU left"
            )
        return (
            f"no CPU was saturated (server {failed.server_cpu:.0%}, load generators "
            f"{failed.load_cpu:.0%}): the server waits on something in turn"
        )


# -- the run ---------------------------------------------------------------------------------------


def connections(bench: Bench, server: Server, seed: Seed, counts: Counts) -> float:
    """Bytes of the server's RSS per connection held; see the module documentation."""
    generators = bench.generators
    node = server.name == "trunkline"

    def client(user: int) -> tuple[int, str | None, int]:
        return (user, seed.tokens[user] if node else None, seed.small_room(user))

    warm = [client(user) for user in range(WARM_UP_CONNECTIONS)]
    generators.connect(server, warm)
    bench.step(server, WARM_UP_CONNECTIONS / 0.5, ROOM_SIZE - 1, 0.5)  # a message each
    generators.close()
    time.sleep(1.0)
    before = rss_bytes(server.pid)
    took_s = generators.connect(server, [client(user) for user in range(counts.connections)])
    time.sleep(1.0)
    after = rss_bytes(server.pid)
    generators.close()
    per = (after - before) / counts.connections
    print(
        f"  {server.name:<20} {counts.connections:,} connections in {took_s:.1f} s: "
        f"RSS {before / 2**20:,.1f} -> {after / 2**20:,.1f} MiB, {per:,.0f} bytes each",
        flush=True,
    )
    return per


def fanout(
    bench: Bench, servers: Sequence[Server], seed: Seed, counts: Counts, shape: str
) -> dict[str, Step]:
    """The best fan-out step of each server in ``shape``, their searches interleaved (the
    clients of both connected at once: each server's are idle while the other's send)."""
    if shape == "big":
        members = [(user, seed.big_room) for user in range(counts.big_room)]
        size = counts.big_room
    else:
        members = [(user, seed.small_room(user)) for user in range(counts.small_rooms * ROOM_SIZE)]
        size = ROOM_SIZE
    for server in servers:
        node = server.name == "trunkline"
        clients = [(user, seed.tokens[user] if node else None, room) for user, room in members]
        bench.generators.connect(server, clients)
    time.sleep(0.5)  # the raw server registers a client just after its handshake
    try:
        found = bench.searches(servers, shape_label(shape, counts), size)
        return {name: search.best for name, search in found.items()}
    finally:
        bench.generators.close()


def shape_label(shape: str, counts: Counts) -> str:
    return f"1 x {counts.big_room}" if shape == "big" else f"{counts.small_rooms} x {ROOM_SIZE}"


def measure(
    counts: Counts, database_dir: str | None, keep: bool, postgres: str | None = None
) -> dict[str, Any]:
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    directory = Path(tempfile.mkdtemp(prefix="bench-chat-", dir=database_dir or MEMORY_DIRECTORY))
    processes = Processes(directory)
    database_url = f"sqlite:///{directory}/bench.db"
    schema = None
    if postgres is not None:
        # A schema of its own on the server, dropped at the end.
        schema = f"bench_chat_{uuid.uuid4().hex[:12]}"
        run(lambda: _postgres(postgres, f"CREATE SCHEMA {schema}"), real_clock=True)
        database_url = f"{postgres}{'&' if '?' in postgres else '?'}search_path={schema}"
    try:
        started = time.perf_counter()
        seeded = run(lambda: seed(database_url, counts), real_clock=True)
        print(
            f"seeded {counts.connections:,} users, their tokens and "
            f"{len(seeded.small_rooms) + 1:,} rooms in {time.perf_counter() - started:.1f} s "
            f"({database_url})",
            flush=True,
        )
        generators = Generators(processes, counts.workers)
        servers = {
            "raw": start_raw(processes),
            "trunkline": start_node(processes, database_url, NODE_ENVIRONMENT),
        }
        print(
            "pids: "
            + ", ".join(f"{name} {server.pid}" for name, server in servers.items())
            + ", load "
            + " ".join(str(worker.pid) for worker in generators.workers),
            flush=True,
        )
        bench = Bench(counts, generators)

        print("\nconnections held (bytes of RSS each)")
        per_connection = {
            name: connections(bench, server, seeded, counts) for name, server in servers.items()
        }
        fan: dict[tuple[str, str], Step] = {}
        for shape in ("big", "small"):
            print(f"\nfan-out, {shape_label(shape, counts)}, the servers' steps in turn")
            best = fanout(bench, list(servers.values()), seeded, counts, shape)
            for name, step in best.items():
                fan[name, shape] = step

        print(f"\nacknowledgements, {shape_label('small', counts)}, at half the best rate")
        node = servers["trunkline"]
        clients = [
            (user, seeded.tokens[user], seeded.small_room(user))
            for user in range(counts.small_rooms * ROOM_SIZE)
        ]
        generators.connect(node, clients)
        half = fan["trunkline", "small"].rate / 2
        try:
            bench.step(node, half, ROOM_SIZE - 1, 1.0)  # warm-up: the joins' work, not counted
            ack = bench.step(node, half, ROOM_SIZE - 1, max(counts.step_s, 5.0))
            bench.report_step("trunkline ack", ack)
        finally:
            generators.close()
        generators.all({"op": "exit"})
        return report(counts, per_connection, fan, ack)
    finally:
        processes.stop_all()
        if schema is not None and postgres is not None and not keep:
            run(lambda: _postgres(postgres, f"DROP SCHEMA {schema} CASCADE"), real_clock=True)
        if keep:
            print(f"kept {directory}: the database and every process's log", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def line(label: str, ours: str, baseline: str, ratio: str, target: str) -> None:
    print(f"{label:<34} {ours:>14} {baseline:>14} {ratio:>7}   {target}")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(
    counts: Counts,
    per_connection: dict[str, float],
    fan: dict[tuple[str, str], Step],
    ack: Step,
) -> dict[str, Any]:
    print()
    line("figure", "trunkline", "raw (same run)", "ratio", "target")
    bytes_ = per_connection["trunkline"]
    limit = TARGETS["bytes_per_connection"]
    line(
        "connections held",
        f"{counts.connections:,}",
        f"{counts.connections:,}",
        "",
        "",
    )
    line(
        "bytes per connection",
        f"{bytes_:,.0f} B",
        f"{per_connection['raw']:,.0f} B",
        f"{per_connection['raw'] / bytes_:.2f}",
        f"<= {limit:,} B {verdict(bytes_ <= limit)}",
    )
    ratios = {}
    for shape in ("big", "small"):
        ours, raw = fan["trunkline", shape], fan["raw", shape]
        ratios[shape] = ours.deliveries_per_s / raw.deliveries_per_s
        line(
            f"fan-out {shape_label(shape, counts)}, deliveries/s",
            f"{ours.deliveries_per_s:,.0f}",
            f"{raw.deliveries_per_s:,.0f}",
            f"{ratios[shape]:.2f}",
            f">= {TARGETS['fanout_ratio']:.2f} {verdict(ratios[shape] >= TARGETS['fanout_ratio'])}",
        )
        line(
            "  p99 at that rate",
            f"{ours.p99_ms:,.1f} ms",
            f"{raw.p99_ms:,.1f} ms",
            "",
            f"< {P99_LIMIT_MS:g} ms {verdict(ours.p99_ms < P99_LIMIT_MS)}",
        )
        line(
            "  server CPU per delivery",
            f"{ours.server_us_per_delivery:,.1f} us",
            f"{raw.server_us_per_delivery:,.1f} us",
            f"{raw.server_us_per_delivery / ours.server_us_per_delivery:.2f}",
            f"(server at {ours.server_cpu:.0%} and {raw.server_cpu:.0%} of a core)",
        )
    worst = min(ratios, key=lambda shape: ratios[shape])
    line(
        f"ack p99, {shape_label('small', counts)} at {ack.rate:,.0f} msg/s",
        f"{ack.ack_p99_ms:,.1f} ms",
        "-",
        "",
        f"<= {TARGETS['ack_p99_ms']:g} ms {verdict(ack.ack_p99_ms <= TARGETS['ack_p99_ms'])}",
    )
    print("(ratio: how trunkline does against the baseline; above 1, better than it)")
    return {
        "connections": counts.connections,
        "bytes_per_connection": round(bytes_),
        "fanout_deliveries_per_s": round(fan["trunkline", worst].deliveries_per_s),
        "raw_fanout_deliveries_per_s": round(fan["raw", worst].deliveries_per_s),
        "fanout_ratio": round(ratios[worst], 3),
        "p99_ms": round(fan["trunkline", worst].p99_ms, 1),
        "ack_p99_ms": round(ack.ack_p99_ms, 1),
    }


async def _postgres(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url.split("?")[0])
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, short steps")
    parser.add_argument(
        "--database-dir",
        default=None,
        help=f"where the SQLite file goes (default: {MEMORY_DIRECTORY or 'a temporary one'})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the processes' logs"
    )
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run the node on this PostgreSQL server (in a schema of its own) instead of SQLite",
    )
    options = parser.parse_args()
    counts = QUICK if options.quick else FULL

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    results = measure(counts, options.database_dir, options.keep, options.postgres)
    print(json.dumps(results))


if __name__ == "__main__":
    cli()
