"""Notification benchmark: events in, messages out, through a real notifier and one node's
``notify`` queue to a local webhook receiver and a local SMTP server, on SQLite and
PostgreSQL, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/notify.py            # the full run (a few minutes)
    .venv/bin/python bench/notify.py --quick    # smaller counts: a smoke run
    .venv/bin/python bench/notify.py --postgres postgresql://postgres@127.0.0.1:5432/test

The set-up: a ``Notifier`` with a webhook-only category (``chat.direct_message``) and an
email-only one (``chat.mention``); a ``jobs.Jobs`` node running the ``notify`` queue (limit
``--limit``, 100); the real ``WebhookChannel`` (``127.0.0.1`` allow-listed; open, as a
node keeps it: kept-alive connections) and
``EmailChannel`` (plain SMTP); users with their addresses stored beforehand. The receivers
(``bench/notify_receivers.py``: aiohttp and aiosmtpd) run in a process of their own and
record when each message arrives.

- **Deliveries/s** (webhook, SMTP; SQLite, PostgreSQL): N events, each for one user, sent
  as fast as ``--senders`` tasks can (64 by default: each waits for its event to be stored
  before sending the next, and fewer leave the node idle), timed from the first send until
  the receiver has the last message. Baseline: *the bare receiver*: the
  same number of messages sent straight to it at the queue's concurrency (aiohttp POSTs
  through one session; ``aiosmtplib.send``, one connection per message, as the channel does).
  Each run prints how busy the node's process was (CPU seconds per second). The webhook
  figures are the median of three runs (one with ``--quick``), each on a fresh store: the
  host's speed varies from run to run.
- **The delivery side alone** (webhook): the same events all sent while the queue is paused,
  then timed from its resumption until the last arrives: the queue and the channel without
  the senders. Baselines: the bare POSTs, and bare POSTs with a session (a connection) each,
  as a webhook channel that is not open makes them. Printed, and in the JSON line as
  ``webhook_queued_deliveries_per_s``.
- **Latency p50/p99** (webhook): events sent at half the maximum rate just measured, paced,
  for ``latency_s``; per delivery, from the call to ``send`` until the receiver has it.
  Where the time goes is printed from the same deliveries: ``send()`` itself, the wait in
  the queue (until the job starts, from the job's telemetry), the job until the receiver
  has the message (loading, rendering, the channel's request), and the receiver's arrival
  until the delivery is recorded (the ``delivered`` telemetry event).

Every measurement gets a store of its own (a SQLite file on ``/dev/shm`` where there is one;
a PostgreSQL schema). The last line is one JSON object: ``webhook_deliveries_per_s``,
``smtp_deliveries_per_s``, ``p50_s``, ``p99_s`` on PostgreSQL, and the same on SQLite with a
``sqlite_`` prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import asyncpg  # type: ignore[import-untyped]

from trunkline import db, jobs, notify, otp
from trunkline.notify.channels import EmailChannel, SmtpSettings, WebhookChannel, WebhookSettings
from trunkline.otp.testing import run

MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
DEFAULT_POSTGRES = os.environ.get(
    "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RECEIVERS = Path(__file__).with_name("notify_receivers.py")
HOST = "127.0.0.1"
USERS = 1_000
WEBHOOK = "chat.direct_message"
EMAIL = "chat.mention"
PAYLOAD = {"sender_name": "Bob", "room_name": "ops", "text": "lunch at noon?"}
SECRET = "a benchmark secret of some length"
WAIT_S = 300.0
# Enough senders to keep the node busy: with 8, each waiting for its event to commit before
# sending the next, the rate measured the senders' own latency (the node at 60% of a core).
SENDERS = 64

# The targets for one node: (value, whether lower is better).
TARGETS = {"webhook_deliveries_per_s": (2_000, False), "p99_s": (1.0, True)}


@dataclass(frozen=True)
class Counts:
    webhook: int
    smtp: int
    latency_s: float
    rounds: int  # webhook runs, each on a fresh store: their median is the figure


FULL = Counts(webhook=10_000, smtp=3_000, latency_s=15.0, rounds=3)
QUICK = Counts(webhook=600, smtp=200, latency_s=3.0, rounds=1)


# -- the receivers ---------------------------------------------------------------------------------


class Receivers:
    """``notify_receivers.py`` in a process of its own, and its control routes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RECEIVERS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready, http_port, smtp_port = self.process.stdout.readline().split()
        assert ready == "ready", ready
        self.http_port = int(http_port)
        self.smtp_port = int(smtp_port)
        self.hook_url = f"http://{HOST}:{self.http_port}/hook"
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://{HOST}:{self.http_port}{path}") as response:
            return await response.json()

    async def reset(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(f"http://{HOST}:{self.http_port}/reset") as response:
            response.raise_for_status()

    async def wait_for(self, kind: str, n: int) -> dict[int, float]:
        """Wait until ``n`` messages of ``kind`` arrived; delivery id -> arrival time."""
        deadline = time.monotonic() + WAIT_S
        while await self._get(f"/count/{kind}") < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: fewer than {n} messages after {WAIT_S}s")
            await asyncio.sleep(0.01)
        return {int(d): float(t) for d, t in await self._get(f"/arrivals/{kind}")}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


# -- stores and nodes ------------------------------------------------------------------------------


class Stores:
    """Fresh databases: a SQLite file, or a PostgreSQL schema, migrated for jobs and notify."""

    def __init__(self, postgres_url: str) -> None:
        self.postgres_url = postgres_url

    @asynccontextmanager
    async def open(self, kind: str) -> AsyncIterator[db.Database]:
        migrations = {jobs.COMPONENT: jobs.MIGRATIONS, notify.COMPONENT: notify.MIGRATIONS}
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(dir=MEMORY_DIRECTORY, prefix="bench-notify-") as d:
                async with db.connect(f"sqlite:///{d}/notify.db") as database:
                    await database.migrate(migrations)
                    yield database
            return
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        # The admin connection takes no trunkline options (max_size...): the bare URL.
        admin = await asyncpg.connect(self.postgres_url.partition("?")[0])
        await admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in self.postgres_url else "?"
        try:
            async with db.connect(
                f"{self.postgres_url}{separator}search_path={schema}"
            ) as database:
                await database.migrate(migrations)
                yield database
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()


@asynccontextmanager
async def running_node(
    database: db.Database, receivers: Receivers, limit: int
) -> AsyncIterator[tuple[notify.Notifier, jobs.Jobs]]:
    """A notifier with the real channels, a node running its queue, and the users."""
    config = notify.NotifyConfig(
        categories={
            WEBHOOK: notify.Category({"webhook": True}),
            EMAIL: notify.Category({"email": True}),
        },
        unsubscribe_secret=SECRET,
        unsubscribe_url="https://bench.local/notify/unsubscribe",
    )
    webhook = WebhookChannel(WebhookSettings(secret=SECRET, allow=(HOST,)))
    email = EmailChannel(
        SmtpSettings(
            host=HOST, port=receivers.smtp_port, from_address="noreply@bench.local", security="none"
        )
    )
    registry = jobs.WorkerRegistry()
    notifier = notify.Notifier(database, config, channels=[webhook, email], registry=registry)
    async with database.transaction() as tx:
        for user in range(1, USERS + 1):
            await notify.set_address(tx, user, "webhook", receivers.hook_url)
            await notify.set_address(tx, user, "email", f"user{user}@bench.local")
    node = jobs.Jobs(database, registry=registry, queues={"notify": limit}, migrate=False)
    supervisor = await node.start()
    try:
        async with webhook:  # kept-alive connections, as a node keeps them
            yield notifier, node
    finally:
        await otp.stop(supervisor, "shutdown")


_STATUSES = "SELECT status, count(*) AS n FROM notify_deliveries GROUP BY status ORDER BY status"


async def check_all_delivered(database: db.Database, n: int) -> None:
    """Every delivery of the run is recorded ``sent`` or ``delivered``, or say what is not."""
    counts = {row["status"]: int(row["n"]) for row in await database.fetch(_STATUSES)}
    # The receiver may have the last message a moment before its job records it.
    deadline = time.monotonic() + 10
    while counts.get("sent", 0) + counts.get("delivered", 0) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        counts = {row["status"]: int(row["n"]) for row in await database.fetch(_STATUSES)}
    if counts.get("sent", 0) + counts.get("delivered", 0) < n:
        print(f"  warning: deliveries by status: {counts}", flush=True)


# -- the measurements ----------------------------------------------------------------------------


async def max_rate(
    stores: Stores,
    kind: str,
    receivers: Receivers,
    category: str,
    n: int,
    options: Options,
    *,
    queued_first: bool = False,
) -> float:
    """Deliveries/s: ``n`` events sent as fast as the senders go, until all arrived. With
    ``queued_first``, the events are all sent while the queue is paused (not timed), then
    timed from its resumption: the delivery side alone."""
    channel = "webhook" if category == WEBHOOK else "smtp"
    await receivers.reset()
    async with (
        stores.open(kind) as database,
        running_node(database, receivers, options.limit) as (notifier, node),
    ):
        if queued_first:
            await node.pause("notify", local_only=True)
        next_event = 0

        async def sender() -> None:
            nonlocal next_event
            while next_event < n:
                i = next_event
                next_event += 1
                await notifier.send(category, [i % USERS + 1], payload=PAYLOAD)

        start = time.monotonic()
        cpu = time.process_time()
        await asyncio.gather(*(sender() for _ in range(options.senders)))
        sent = time.monotonic() - start
        if queued_first:
            start = time.monotonic()
            cpu = time.process_time()
            await node.resume("notify", local_only=True)
        arrived = await receivers.wait_for(channel, n)
        elapsed = max(arrived.values()) - start
        # How busy this process (the node: senders, queue, channels) was: near 100% is a
        # node bound by its one core, not by the database or the receiver.
        busy = (time.process_time() - cpu) / (time.monotonic() - start)
        await check_all_delivered(database, n)
    what = "queued first, then delivered" if queued_first else "all received"
    print(
        f"  {channel} ({kind}): {n:,} events sent in {sent:.2f} s "
        f"({n / sent:,.0f}/s), {what} in {elapsed:.2f} s ({n / elapsed:,.0f}/s); "
        f"the node's CPU {busy:.0%} of a core",
        flush=True,
    )
    return n / elapsed


@dataclass
class Trace:
    """When each delivery of the latency run reached each step (``time.monotonic()``)."""

    called: dict[int, float] = field(default_factory=dict)
    returned: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    recorded: dict[int, float] = field(default_factory=dict)

    def on_job(
        self,
        event: tuple[str, ...],
        measurements: Mapping[str, Any],
        metadata: Mapping[str, Any],
        _: Any,
    ) -> None:
        job = metadata["job"]
        self.started.setdefault(int(job.args["delivery_id"]), time.monotonic())

    def on_delivered(
        self,
        event: tuple[str, ...],
        measurements: Mapping[str, Any],
        metadata: Mapping[str, Any],
        _: Any,
    ) -> None:
        self.recorded[int(metadata["delivery_id"])] = time.monotonic()


async def latency(
    stores: Stores, kind: str, receivers: Receivers, rate: float, options: Options
) -> tuple[float, float]:
    """p50 and p99 seconds from ``send`` to the webhook receiver, at ``rate`` events/s."""
    n = max(20, int(rate * options.latency_s))
    trace = Trace()
    await receivers.reset()
    async with (
        stores.open(kind) as database,
        running_node(database, receivers, options.limit) as (notifier, _),
    ):

        async def one(i: int) -> None:
            called = time.monotonic()
            result = await notifier.send(WEBHOOK, [i % USERS + 1], payload=PAYLOAD)
            returned = time.monotonic()
            for delivery in result.deliveries:
                trace.called[delivery.delivery_id] = called
                trace.returned[delivery.delivery_id] = returned

        events = [(*jobs.JOB_EVENT, "start")]
        with (
            otp.telemetry.attached("bench.job", events, trace.on_job),
            otp.telemetry.attached(
                "bench.delivered", [notify.delivery_event("delivered")], trace.on_delivered
            ),
        ):
            tasks = []
            start = time.monotonic()
            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            arrived = await receivers.wait_for("webhook", n)
            await check_all_delivered(database, n)
    totals = sorted(arrived[d] - trace.called[d] for d in trace.called)
    p50, p99 = _quantile(totals, 0.50), _quantile(totals, 0.99)
    print(
        f"  latency ({kind}) at {rate:,.0f} events/s, {n:,} events: p50 {p50 * 1000:,.1f} ms, "
        f"p99 {p99 * 1000:,.1f} ms",
        flush=True,
    )
    steps = {
        "send() (the transaction)": [trace.returned[d] - trace.called[d] for d in trace.called],
        "queue (until the job starts)": [
            trace.started[d] - trace.returned[d] for d in trace.called if d in trace.started
        ],
        "job until the receiver has it": [
            arrived[d] - trace.started[d] for d in trace.called if d in trace.started
        ],
        "receiver until recorded": [
            trace.recorded[d] - arrived[d] for d in trace.called if d in trace.recorded
        ],
    }
    print(f"  where the time goes ({kind}):  p50 ms    p99 ms   share of the mean", flush=True)
    means = {name: statistics.fmean(values) for name, values in steps.items() if values}
    whole = sum(max(0.0, mean) for mean in means.values()) or 1.0
    for name, values in steps.items():
        if not values:
            continue
        ordered = sorted(values)
        print(
            f"    {name:<32} {_quantile(ordered, 0.5) * 1000:>8.1f} "
            f"{_quantile(ordered, 0.99) * 1000:>8.1f}   {max(0.0, means[name]) / whole:>6.0%}",
            flush=True,
        )
    return p50, p99


async def bare_webhook(
    receivers: Receivers, n: int, concurrency: int, *, session_each: bool = False
) -> float:
    """The baseline: ``n`` POSTs straight to the receiver, ``concurrency`` at once, through
    one session (kept-alive connections), or a session (a connection) each, as the webhook
    channel makes them."""
    await receivers.reset()
    body = json.dumps({"delivery": 0, "text": PAYLOAD["text"], "data": PAYLOAD}).encode()
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as shared:

        async def post(session: aiohttp.ClientSession, i: int) -> None:
            headers = {"Content-Type": "application/json", "Trunkline-Delivery": str(i)}
            async with session.post(receivers.hook_url, data=body, headers=headers) as response:
                await response.read()

        async def one(i: int) -> None:
            async with semaphore:
                if not session_each:
                    await post(shared, i)
                    return
                async with aiohttp.ClientSession() as own:
                    await post(own, i)

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    arrived = await receivers.wait_for("webhook", n)
    return n / (max(arrived.values()) - start)


async def bare_smtp(receivers: Receivers, n: int, concurrency: int) -> float:
    """The baseline: ``n`` emails sent straight to the SMTP server with ``aiosmtplib.send``
    (a connection each, as the channel does), ``concurrency`` at once."""
    await receivers.reset()
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        mail = EmailMessage()
        mail["From"] = "noreply@bench.local"
        mail["To"] = f"user{i % USERS + 1}@bench.local"
        mail["Subject"] = "New message from Bob"
        mail["Message-ID"] = f"<delivery-{i}@bench.local>"
        mail.set_content(PAYLOAD["text"])
        async with semaphore:
            await aiosmtplib.send(mail, hostname=HOST, port=receivers.smtp_port, timeout=30)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    arrived = await receivers.wait_for("smtp", n)
    return n / (max(arrived.values()) - start)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    counts: Counts
    limit: int
    senders: int
    postgres: str

    @property
    def latency_s(self) -> float:
        return self.counts.latency_s


def report(label: str, value: float, unit: str, baseline_label: str, baseline: float) -> None:
    print(
        f"{label:<34} {value:>10,.1f} {unit:<4} {baseline_label:<34} {baseline:>10,.1f} "
        f"ratio {value / baseline:5.2f}",
        flush=True,
    )


async def main(options: Options) -> dict[str, float]:
    stores = Stores(options.postgres)
    counts = options.counts
    receivers = Receivers()
    results: dict[str, float] = {}
    try:
        bare_hook = await bare_webhook(receivers, counts.webhook, options.limit)
        bare_each = await bare_webhook(receivers, counts.webhook, options.limit, session_each=True)
        bare_mail = await bare_smtp(receivers, counts.smtp, options.limit)
        for kind, prefix in (("postgresql", ""), ("sqlite", "sqlite_")):
            print(f"{kind}:", flush=True)
            webhook = statistics.median(
                [
                    await max_rate(stores, kind, receivers, WEBHOOK, counts.webhook, options)
                    for _ in range(counts.rounds)
                ]
            )
            queued = statistics.median(
                [
                    await max_rate(
                        stores, kind, receivers, WEBHOOK, counts.webhook, options, queued_first=True
                    )
                    for _ in range(counts.rounds)
                ]
            )
            smtp = await max_rate(stores, kind, receivers, EMAIL, counts.smtp, options)
            p50, p99 = await latency(stores, kind, receivers, webhook / 2, options)
            results[f"{prefix}webhook_deliveries_per_s"] = webhook
            results[f"{prefix}smtp_deliveries_per_s"] = smtp
            results[f"{prefix}webhook_queued_deliveries_per_s"] = queued
            results[f"{prefix}p50_s"] = p50
            results[f"{prefix}p99_s"] = p99
    finally:
        await receivers.close()

    print(f"\n{'figure':<34} {'ours':>10} {'':<4} {'baseline (same run)':<34} {'':>10} ratio")
    for kind, prefix in (("postgresql", ""), ("sqlite", "sqlite_")):
        report(
            f"webhook deliveries/s ({kind})",
            results[f"{prefix}webhook_deliveries_per_s"],
            "/s",
            f"bare POSTs, {options.limit} at once",
            bare_hook,
        )
        report(
            f"  delivery side alone ({kind})",
            results[f"{prefix}webhook_queued_deliveries_per_s"],
            "/s",
            f"bare POSTs, {options.limit} at once",
            bare_hook,
        )
        report(
            "",
            results[f"{prefix}webhook_queued_deliveries_per_s"],
            "/s",
            "  the same, a connection each",
            bare_each,
        )
        report(
            f"SMTP deliveries/s ({kind})",
            results[f"{prefix}smtp_deliveries_per_s"],
            "/s",
            f"bare aiosmtplib.send, {options.limit} at once",
            bare_mail,
        )
    for key, (goal, lower_is_better) in TARGETS.items():
        value = results[key]
        met = value <= goal if lower_is_better else value >= goal
        sign = "<=" if lower_is_better else ">="
        print(f"target {key} {sign} {goal:,g}: {value:,.3f} {'met' if met else 'MISSED'}")
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="the server to use")
    parser.add_argument("--limit", type=int, default=100, help="the notify queue's limit")
    parser.add_argument("--senders", type=int, default=SENDERS, help="tasks calling send at once")
    args = parser.parse_args()
    if args.limit < 1 or args.senders < 1:
        parser.error("--limit and --senders must be 1 or more")
    options = Options(QUICK if args.quick else FULL, args.limit, args.senders, args.postgres)
    results = run(lambda: main(options), real_clock=True)
    print(json.dumps({key: round(value, 4) for key, value in results.items()}))


if __name__ == "__main__":
    cli()
