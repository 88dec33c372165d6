"""The cron plugin: one job per entry per matching minute, in the entry's time zone, across
DST changes, restarts, outages and any number of nodes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from job_backends import IDLE_S, Backend, eventually, running

from trunkline import db, jobs, otp
from trunkline.jobs.cron import Cron, CronEntry
from trunkline.otp import MockClock

MINUTE = timedelta(minutes=1)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest) -> MockClock:
    """The clock of conftest.py, starting when the test says (``indirect`` parameter)."""
    start = getattr(request, "param", "2026-01-01T00:00:00+00:00")
    return MockClock(_at(start), autojump_threshold_s=IDLE_S)


async def _pass(seconds: float) -> None:
    """Let ``seconds`` of virtual time pass, at most half an hour at a time.

    One long sleep would leave its end as the only timer while the cron waits for the
    database: a reply slower than the clock's idle threshold would then jump virtual time
    straight there, hours past ticks the cron would skip as too late.
    """
    step_s = 1800.0
    while seconds > step_s:
        await asyncio.sleep(step_s)
        seconds -= step_s
    await asyncio.sleep(seconds)


def _starting_at(when: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("clock", [when], indirect=True, ids=[when[:16]])


def _options(backend: Backend) -> dict[str, Any]:
    # The listening connection's health check would wake the loop every 15 s of a virtual
    # day: each wake costs the mock clock a real pause.
    return {"health_check_interval_s": 3600} if backend.name == "postgresql" else {}


@asynccontextmanager
async def _crons(
    backend: Backend, crons: Iterable[Cron], *, database: db.Database | None = None
) -> AsyncIterator[list[jobs.Jobs]]:
    """Each cron's process, as its node's tree would run it, on nodes sharing one database.

    Only the cron runs (under a supervisor of its own): the node's other periodic processes
    would wake the mock clock every few seconds of a virtual day, each wake a real pause.
    """
    crons = list(crons)
    async with AsyncExitStack() as stack:
        if database is None:
            databases = await stack.enter_async_context(
                backend.databases(len(crons), **_options(backend))
            )
        else:
            databases = [database] * len(crons)
        nodes = []
        for i, (conn, cron) in enumerate(zip(databases, crons, strict=True)):
            node = jobs.Jobs(conn, registry=jobs.WorkerRegistry(), queues={}, node=f"node-{i}")
            supervisor = await otp.Supervisor.start([cron.child_spec(node)])
            stack.push_async_callback(otp.stop, supervisor)
            nodes.append(node)
        yield nodes


async def _by_tick(database: db.Database) -> dict[str, list[str]]:
    """The jobs the cron made: tick (UTC, ISO) -> the entries' labels, sorted."""
    found: dict[str, list[str]] = {}
    for job in await jobs.list_jobs(database, limit=100_000):
        found.setdefault(job.meta["cron_at"], []).append(job.meta["cron"])
    return {tick: sorted(labels) for tick, labels in sorted(found.items())}


async def _wait_for(database: db.Database, expected: dict[str, list[str]]) -> None:
    async def done() -> bool:
        return len(await jobs.list_jobs(database, limit=100_000)) >= sum(
            map(len, expected.values())
        )

    await eventually(done, f"{sum(map(len, expected.values()))} cron jobs")
    assert await _by_tick(database) == expected


def _fires(cron: Cron, start: str, end: str) -> list[str]:
    """The UTC minutes from ``start`` to ``end`` (excluded) at which ``cron`` fires."""
    tick, stop, found = _at(start), _at(end), []
    while tick < stop:
        if cron.fires_at(tick):
            found.append(tick.strftime("%d %H:%M"))
        tick += MINUTE
    return found


# -- schedules ----------------------------------------------------------------------------------


async def test_entries_fire_at_their_minutes_over_a_day(backend: Backend, clock: MockClock) -> None:
    # 2026-01-01 is a Thursday; the node starts at 00:00:00 sharp, so that minute counts.
    cron = Cron(
        [
            ("*/30 * * * *", "half"),
            CronEntry("@hourly", "hourly", name="hourly"),
            ("@daily", "daily"),
            CronEntry("15 9 * * mon-fri", "weekday", {"kind": "digest"}),
            ("0 12 * * sun", "sunday"),
            ("@monthly", "monthly"),
            ("@yearly", "yearly"),
        ]
    )
    expected: dict[str, list[str]] = {}
    for minute in range(24 * 60):
        labels = []
        if minute % 30 == 0:
            labels.append("*/30 * * * *")
        if minute % 60 == 0:
            labels.append("hourly")
        if minute == 0:
            labels += ["@daily", "@monthly", "@yearly"]
        if minute == 9 * 60 + 15:
            labels.append("15 9 * * mon-fri")
        if labels:
            tick = datetime(2026, 1, 1, tzinfo=UTC) + minute * MINUTE
            expected[tick.isoformat()] = sorted(labels)
    async with _crons(backend, [cron]) as [node]:
        await _pass(24 * 3600 - 30)
        await _wait_for(node.database, expected)
        weekday = list(await node.list_jobs(worker="weekday"))
        assert [(j.args, j.meta, j.state) for j in weekday] == [
            (
                {"kind": "digest"},
                {"cron": "15 9 * * mon-fri", "cron_at": "2026-01-01T09:15:00+00:00"},
                "available",
            )
        ]


def test_nicknames_and_names_match_standard_cron() -> None:
    def days(expression: str, start: str, end: str) -> list[str]:
        cron = Cron([(expression, "w")])
        day, stop, found = _at(start), _at(end), []
        while day < stop:
            if cron.fires_at(day):
                found.append(day.strftime("%Y-%m-%d"))
            day += timedelta(days=1)
        return found

    # 2026-01-04 is a Sunday.
    assert days("@weekly", "2026-01-01T00:00Z", "2026-01-22T00:00Z") == [
        "2026-01-04",
        "2026-01-11",
        "2026-01-18",
    ]
    assert days("0 0 * * 7", "2026-01-01T00:00Z", "2026-01-12T00:00Z") == [
        "2026-01-04",
        "2026-01-11",
    ]
    assert days("@monthly", "2026-01-01T00:00Z", "2026-04-01T00:00Z") == [
        "2026-01-01",
        "2026-02-01",
        "2026-03-01",
    ]
    assert days("@annually", "2026-01-01T00:00Z", "2027-01-02T00:00Z") == [
        "2026-01-01",
        "2027-01-01",
    ]
    assert days("@midnight", "2026-01-01T00:00Z", "2026-01-03T00:00Z") == days(
        "@daily", "2026-01-01T00:00Z", "2026-01-03T00:00Z"
    )
    # Day of month and day of week both set: either will do (the 13th, and Fridays).
    assert days("0 0 13 * fri", "2026-02-01T00:00Z", "2026-02-28T00:00Z") == [
        "2026-02-06",
        "2026-02-13",
        "2026-02-20",
        "2026-02-27",
    ]
    assert days("0 0 * feb-mar 1", "2026-01-20T00:00Z", "2026-02-12T00:00Z") == [
        "2026-02-02",
        "2026-02-09",
    ]
    # Sunday is 0 and 7, in ranges too ("7-7" is not every day).
    sundays = ["2026-01-04", "2026-01-11"]
    assert days("0 0 * * 7-7", "2026-01-01T00:00Z", "2026-01-12T00:00Z") == sundays
    assert days("0 0 * * 6-7", "2026-01-01T00:00Z", "2026-01-05T00:00Z") == [
        "2026-01-03",
        "2026-01-04",
    ]
    assert days("0 0 * * sat,7", "2026-01-01T00:00Z", "2026-01-05T00:00Z") == [
        "2026-01-03",
        "2026-01-04",
    ]
    # Both days restricted, the weekdays being all of them: every day, as in every cron.
    assert len(days("0 0 1 * 1-7", "2026-01-01T00:00Z", "2026-01-11T00:00Z")) == 10
    # Seconds are ignored.
    assert Cron([("5 * * * *", "w")]).fires_at(_at("2026-01-01T10:05:59Z"))


# -- time zones and DST -------------------------------------------------------------------------


@_starting_at("2026-07-15T06:30:00+00:00")
async def test_an_entry_reads_its_time_zone(backend: Backend, clock: MockClock) -> None:
    cron = Cron(
        [
            CronEntry("0 9 * * *", "paris", timezone="Europe/Paris"),
            ("0 9 * * *", "tokyo"),  # the cron's zone
        ],
        timezone="Asia/Tokyo",
    )
    # Winter: Paris is UTC+1; summer: UTC+2. Tokyo has no DST: UTC+9.
    assert _fires(cron, "2026-01-15T00:00Z", "2026-01-16T00:00Z") == ["15 00:00", "15 08:00"]
    assert _fires(cron, "2026-07-15T00:00Z", "2026-07-16T00:00Z") == ["15 00:00", "15 07:00"]
    async with _crons(backend, [cron]) as [node]:
        await asyncio.sleep(3600)
        await _wait_for(node.database, {"2026-07-15T07:00:00+00:00": ["0 9 * * *"]})
        [job] = await node.list_jobs()
        assert job.worker == "paris"


def test_spring_forward_in_paris() -> None:
    # 2026-03-29: at 02:00 the clocks of Paris go to 03:00 (01:00 UTC): 02:xx never happens.
    cron = Cron(
        [("30 2 * * *", "w"), ("0 3 * * *", "x")],
        timezone="Europe/Paris",
    )
    # The skipped 02:30 fires at the first minute after the gap, with the 03:00 entry.
    assert _fires(cron, "2026-03-28T00:00Z", "2026-03-31T00:00Z") == [
        "28 01:30",
        "28 02:00",
        "29 01:00",
        "30 00:30",
        "30 01:00",
    ]
    assert [j.meta for j in cron.jobs_at(_at("2026-03-29T01:00Z"))] == [
        {"cron": "30 2 * * *", "cron_at": "2026-03-29T01:00:00+00:00"},
        {"cron": "0 3 * * *", "cron_at": "2026-03-29T01:00:00+00:00"},
    ]
    # Entries of every hour run by elapsed time: nothing is made up for the missing hour.
    local_day = ("2026-03-28T23:00Z", "2026-03-29T22:00Z")  # 23 hours long
    assert len(_fires(Cron([("*/30 * * * *", "w")], timezone="Europe/Paris"), *local_day)) == 46
    hourly = _fires(Cron([("30 * * * *", "w")], timezone="Europe/Paris"), *local_day)
    assert hourly[:3] == ["28 23:30", "29 00:30", "29 01:30"]
    assert len(hourly) == 23


def test_fall_back_in_paris() -> None:
    # 2026-10-25: at 03:00 the clocks of Paris go back to 02:00 (01:00 UTC): 02:xx twice.
    cron = Cron([("30 2 * * *", "w")], timezone="Europe/Paris")
    # A set time that comes twice fires the first time only.
    assert _fires(cron, "2026-10-24T00:00Z", "2026-10-27T00:00Z") == [
        "24 00:30",
        "25 00:30",
        "26 01:30",
    ]
    # Entries of every hour fire each time the clock shows a match: every 30 real minutes.
    local_day = ("2026-10-24T22:00Z", "2026-10-25T23:00Z")  # 25 hours long
    half = _fires(Cron([("*/30 * * * *", "w")], timezone="Europe/Paris"), *local_day)
    assert len(half) == 50
    assert half[4:9] == ["25 00:00", "25 00:30", "25 01:00", "25 01:30", "25 02:00"]


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        (  # spring forward: 02:30 does not exist, it runs at 03:00 CEST
            "2026-03-29T00:10:00+00:00",
            {
                "2026-03-29T00:30:00+00:00": ["*/30 * * * *"],
                "2026-03-29T01:00:00+00:00": ["*/30 * * * *", "30 2 * * *"],
                "2026-03-29T01:30:00+00:00": ["*/30 * * * *"],
            },
        ),
        (  # fall back: 02:30 comes twice, it runs the first time
            "2026-10-25T00:10:00+00:00",
            {
                "2026-10-25T00:30:00+00:00": ["*/30 * * * *", "30 2 * * *"],
                "2026-10-25T01:00:00+00:00": ["*/30 * * * *"],
                "2026-10-25T01:30:00+00:00": ["*/30 * * * *"],
            },
        ),
    ],
    indirect=["clock"],
    ids=["spring", "fall"],
)
async def test_a_running_cron_across_dst(
    backend: Backend, clock: MockClock, expected: dict[str, list[str]]
) -> None:
    cron = Cron([("30 2 * * *", "w"), ("*/30 * * * *", "x")], timezone="Europe/Paris")
    async with _crons(backend, [cron]) as [node]:
        await _pass(95 * 60)  # to 01:45 UTC
        await _wait_for(node.database, expected)


# -- many nodes, restarts, outages --------------------------------------------------------------


@_starting_at("2026-01-01T00:00:30+00:00")
async def test_two_nodes_make_one_job_per_tick(
    backend: Backend, clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def cron() -> Cron:
        return Cron([("* * * * *", "every"), ("*/5 * * * *", "five", {"n": 5})])

    expected: dict[str, list[str]] = {}
    for minute in range(1, 31):
        tick = (datetime(2026, 1, 1, tzinfo=UTC) + minute * MINUTE).isoformat()
        expected[tick] = sorted(["* * * * *", *(["*/5 * * * *"] if minute % 5 == 0 else [])])
    with caplog.at_level(logging.DEBUG, logger="trunkline.jobs"):
        async with _crons(backend, [cron(), cron()]) as [a, _]:
            await asyncio.sleep(30 * 60)
            await _wait_for(a.database, expected)
            await asyncio.sleep(5)  # the last tick's second insert, found
    # Both nodes tried every tick: one inserted each job, the other found it.
    messages = [r.getMessage() for r in caplog.records if "jobs cron 'cron'" in r.getMessage()]
    total = sum(map(len, expected.values()))
    assert sum(" inserted job " in m for m in messages) == total
    assert sum(" found job " in m for m in messages) == total


@_starting_at("2026-01-01T00:01:00+00:00")
async def test_a_restarted_cron_does_not_insert_a_tick_again(
    backend: Backend, clock: MockClock
) -> None:
    cron = Cron([("* * * * *", "every")])
    tick = "2026-01-01T00:01:00+00:00"
    # Time stands still at 00:01:00 sharp until the restart is over: the first process
    # inserts that tick as it starts, and the restarted one, starting on the very same
    # tick, tries it again.
    clock.autojump = False
    with _CronLog() as cron_log:
        async with _crons(backend, [cron]) as [node]:
            database = node.database
            try:
                await cron_log.wait_for(" inserted job ")
                pid = _cron_pid(node)
                otp.exit(pid, "kill")
                await cron_log.wait_for(" found job ")
                assert _cron_pid(node) != pid
                assert clock.now() == _at(tick)
            finally:
                clock.autojump = True
            await asyncio.sleep(50)
            assert await _by_tick(database) == {tick: ["* * * * *"]}
            await _wait_for(
                database, {tick: ["* * * * *"], "2026-01-01T00:02:00+00:00": ["* * * * *"]}
            )
    assert sum(" inserted job " in m for m in cron_log.messages) == 2  # 00:01, 00:02


class _CronLog(logging.Handler):
    """The cron's log, and a way to wait for a line of it (it logs on the test's loop)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.changed = asyncio.Event()
        self.logger = logging.getLogger("trunkline.jobs")
        self.level_before = self.logger.level

    def __enter__(self) -> _CronLog:
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.changed.set()

    async def wait_for(self, text: str) -> None:
        while not any(text in message for message in self.messages):
            self.changed.clear()
            await self.changed.wait()


def _cron_pid(node: jobs.Jobs) -> otp.Pid:
    pid = otp.resolve(otp.Via(node.names, ("plugin", "cron")))
    assert pid is not None
    return pid


@_starting_at("2026-01-01T00:00:30+00:00")
async def test_an_outage_is_waited_out(
    backend: Backend, clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    cron = Cron([("* * * * *", "every")])
    async with (
        backend.broken_database() as (database, outage),
        _crons(backend, [cron], database=database) as [node],
    ):
        pid = _cron_pid(node)
        async with outage:
            await asyncio.sleep(60)  # past the 00:01 tick, which fails and is retried
        assert any("trying the tick" in r.getMessage() for r in caplog.records)
        # Late, but for its own minute; and the cron did not crash for it.
        await _wait_for(database, {"2026-01-01T00:01:00+00:00": ["* * * * *"]})
        assert _cron_pid(node) == pid
        await _wait_for(
            database,
            {
                "2026-01-01T00:01:00+00:00": ["* * * * *"],
                "2026-01-01T00:02:00+00:00": ["* * * * *"],
            },
        )


# -- validation ---------------------------------------------------------------------------------


class _Report(jobs.Worker):
    name = "reports.daily"
    queue = "reports"
    priority = 3
    unique = jobs.Unique(period_s=600)

    async def perform(self, job: jobs.Job) -> None:
        return None


def test_an_entry_takes_the_workers_defaults_and_its_options() -> None:
    [report, named] = Cron(
        [
            ("@daily", _Report()),
            CronEntry("@daily", "other", [1], queue="q", priority=7, tags=["t"], meta={"a": 1}),
        ]
    ).jobs_at(_at("2026-01-01T00:00Z"))
    assert (report.worker, report.queue, report.priority) == ("reports.daily", "reports", 3)
    assert report.unique is not None
    assert report.unique.period_s is None
    assert (named.worker, named.args, named.queue, named.priority) == ("other", [1], "q", 7)
    assert (named.tags, named.meta) == (
        ("t",),
        {"a": 1, "cron": "@daily", "cron_at": "2026-01-01T00:00:00+00:00"},
    )
    assert report.unique_key != named.unique_key


@pytest.mark.parametrize(
    ("entries", "options", "message"),
    [
        ([("61 * * * *", "w")], {}, r"cron entry '61 \* \* \* \*': invalid expression"),
        ([("* * * *", "w")], {}, "has 5 fields"),
        ([("* * * * * *", "w")], {}, "has 5 fields"),
        ([("0 0 * * 5#2", "w")], {}, "not standard cron syntax"),
        ([("0 0 L * *", "w")], {}, "not standard cron syntax"),
        ([("H * * * *", "w")], {}, "not standard cron syntax"),
        ([("@reboot", "w")], {}, "unknown nickname"),
        ([("0 0 * * 6-2", "w")], {}, "is not a range of weekdays"),
        ([("0 0 * * 8", "w")], {}, "invalid expression"),
        ([(5, "w")], {}, "must be a string"),
        ([("@daily", 5)], {}, "worker must be a Worker"),
        ([("@daily", "w", {"at": datetime(2026, 1, 1)})], {}, r"'@daily' -> 'w': args\['at'\]"),
        ([("@daily", "w", (1, 2))], {}, "use a list"),
        ([CronEntry("@daily", "w")], {"timezone": "Mars/Olympus"}, "unknown timezone"),
        ([("@daily",)], {}, "a cron entry is a CronEntry"),
        ([["@daily", "w"]], {}, "a cron entry is a CronEntry"),
        ([("@daily", "w"), ("0 0 * * *", "w")], {}, None),  # two names: both allowed
        ([("@daily", "w"), ("@daily", "w")], {}, "is there twice"),
        ([("@daily", "w")], {"name": ""}, "cron name must be"),
    ],
)
def test_a_cron_is_checked_when_made(
    entries: list[Any], options: dict[str, Any], message: str | None
) -> None:
    if message is None:
        assert len(Cron(entries, **options).entries) == len(entries)
        return
    with pytest.raises(jobs.InvalidJob, match=message):
        Cron(entries, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timezone": "Nowhere/City"}, "'@daily' -> 'w': unknown timezone 'Nowhere/City'"),
        ({"timezone": 3}, "timezone must be"),
        ({"priority": 10}, "'@daily' -> 'w': priority must be"),
        ({"max_attempts": 0}, "max_attempts must be"),
        ({"queue": ""}, "queue must be"),
        ({"tags": "t"}, "tags must be a list"),
        ({"meta": {"cron": "mine"}}, r"meta may not set \['cron'\]"),
        ({"meta": {"x": {1, 2}}}, r"meta\['x'\] is a set"),
        ({"name": ""}, "name must be"),
    ],
)
def test_an_entry_is_checked_when_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(jobs.InvalidJob, match=message):
        CronEntry("@daily", "w", **options)


@_starting_at("2026-01-01T00:00:50+00:00")
async def test_a_cron_runs_in_a_nodes_tree(backend: Backend, clock: MockClock) -> None:
    cron = Cron([("* * * * *", "w")], name="minutely")
    assert isinstance(cron, jobs.Plugin)
    async with (
        backend.database() as database,
        running(database, jobs.WorkerRegistry(), queues={}, plugins=[cron]) as node,
    ):
        supervisor = otp.resolve(otp.Via(node.names, "supervisor"))
        assert supervisor is not None
        assert "minutely" in [child.id for child in await otp.which_children(supervisor)]
        await _wait_for(database, {"2026-01-01T00:01:00+00:00": ["* * * * *"]})
