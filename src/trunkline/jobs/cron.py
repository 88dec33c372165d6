"""The cron: jobs inserted on a schedule, once per matching minute, by any number of nodes.

:class:`Cron` is a :class:`~trunkline.jobs.Plugin`: give it to every node's
:class:`~trunkline.jobs.Jobs` and each node runs a :class:`CronServer` that wakes at the
minute boundaries of the node clock and enqueues one job for every entry whose expression
matches that minute, in the entry's time zone::

    cron = Cron(
        [
            ("*/15 * * * *", "feeds.refresh"),
            CronEntry("0 9 * * 1-5", send_digest, {"kind": "daily"}, timezone="Europe/Paris"),
            ("@daily", "reports.nightly"),
        ]
    )
    node = Jobs(database, registry=registry, plugins=[cron])

Each job is unique by its entry and its minute (a *tick*): every node inserts it, and the
unique key lets one insert through, so a tick makes exactly one job however many nodes run
the cron. A tick is the start of a minute; a process that starts after it (a node starting,
or the cron process restarting) begins with the next one: missed ticks are not made up.
Daylight saving time follows the rule of the classic cron daemons; see ``docs/jobs.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from trunkline import db, otp

from .backoff import database_retry_s
from .enqueue import enqueue_many
from .exceptions import InvalidJob
from .job import STATES
from .new_job import NewJob, check_name, new_job
from .unique import Unique
from .worker import Worker

if TYPE_CHECKING:
    from .jobs import Jobs

# CronServer is the machinery (as the stager is): named here for crash reports and
# introspection, not exported.
__all__ = ["CRON_LATE_LIMIT_S", "CRON_NICKNAMES", "Cron", "CronEntry"]

log = logging.getLogger("trunkline.jobs")

CRON_NICKNAMES: Mapping[str, str] = MappingProxyType(
    {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }
)
"""The nicknames an expression may be, and the expressions they stand for."""

CRON_LATE_LIMIT_S = 3600.0
"""A tick later than this (the node's clock jumped, the database was down) is skipped."""

_MINUTE = timedelta(minutes=1)
_LOOK_AHEAD = 60  # minutes: the most the process sleeps, so a clock jump is noticed
_TICK = "tick"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset(),
    frozenset(),
    frozenset(_MONTHS),
    frozenset(_DAYS),
)
_TOKEN = re.compile(r"[,/\-]")
_CRON_META = ("cron", "cron_at")


# -- the schedule -------------------------------------------------------------------------------


def _weekdays(field: str) -> frozenset[int] | None:
    """The days (0 Sunday to 6 Saturday) a weekday field allows; ``None``: any day ("*").

    Raises:
        ValueError: a value out of 0-7, or a range that runs backwards.
    """
    if field == "*":
        return None
    days: set[int] = set()
    for part in field.split(","):
        spread, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"the step of {part!r} must be at least 1")
        if spread == "*":
            first, last = 0, 6
        else:
            low, _, high = spread.partition("-")
            first = _weekday_number(low)
            last = _weekday_number(high) if high else (7 if step_text else first)
        if not (0 <= first <= 7 and 0 <= last <= 7) or last < first:
            raise ValueError(f"{part!r} is not a range of weekdays (0-7, sun-sat)")
        days.update(day % 7 for day in range(first, last + 1, step))
    return frozenset(days)


def _weekday_number(text: str) -> int:
    return _DAYS.index(text) if text in _DAYS else int(text)


@dataclass(frozen=True, slots=True)
class _Schedule:
    """A standard cron expression, parsed: the values each field allows (``None``: any)."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 is Sunday, as in cron

    @classmethod
    def parse(cls, expression: str) -> _Schedule:
        """Raises ValueError, saying what is wrong."""
        text = CRON_NICKNAMES.get(expression.strip().lower(), expression)
        if text.startswith("@"):
            raise ValueError(f"unknown nickname (known: {', '.join(CRON_NICKNAMES)})")
        fields = text.split()
        if len(fields) != 5:
            raise ValueError("a cron expression has 5 fields: minute hour day month weekday")
        for index, part in enumerate(fields):
            for token in _TOKEN.split(part.lower()):
                if not (token == "*" or token.isdigit() or token in _NAMES[index]):
                    raise ValueError(f"{token!r} is not standard cron syntax")
        try:
            expanded, nth = croniter.expand(text)
        except (ValueError, TypeError) as error:
            raise ValueError(str(error)) from None
        if nth:  # not reachable through the tokens above; kept as a guard
            raise ValueError("'#' is not standard cron syntax")

        def values(index: int) -> frozenset[int] | None:
            allowed = expanded[index]
            return None if allowed == ["*"] else frozenset(int(v) for v in allowed)

        # The weekday field is expanded here: croniter reads a range ending in 7 (Sunday,
        # as 0 is) as every day ("7-7", "5-7").
        return cls(values(0), values(1), values(2), values(3), _weekdays(fields[4].lower()))

    @property
    def every_hour(self) -> bool:
        """Whether its hour field is ``*``: then it runs by elapsed time across DST."""
        return self.hours is None

    def matches(self, wall: datetime) -> bool:
        """Whether the wall-clock minute ``wall`` (naive) matches."""
        if self.minutes is not None and wall.minute not in self.minutes:
            return False
        if self.hours is not None and wall.hour not in self.hours:
            return False
        if self.months is not None and wall.month not in self.months:
            return False
        day = self.days is None or wall.day in self.days
        weekday = self.weekdays is None or (wall.weekday() + 1) % 7 in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return day or weekday  # both restricted: either will do, as in every cron
        return day and weekday


# -- entries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class CronEntry:
    """One line of a cron: a schedule and the job it makes.

    Args:
        expression: a standard 5-field cron expression (``"*/15 9-17 * * mon-fri"``: minute,
            hour, day of month, month, day of week; numbers, ``*``, ranges, steps, lists,
            month and day names) or a nickname: ``@hourly``, ``@daily`` (``@midnight``),
            ``@weekly``, ``@monthly``, ``@yearly`` (``@annually``).
        worker: a :class:`~trunkline.jobs.Worker` (its defaults apply) or a worker's name.
        args: the job's arguments: JSON.
        name: what ``meta["cron"]`` records, and part of the entry's identity; default the
            expression.
        timezone: the zone whose wall clock the expression reads (an IANA name such as
            ``"Europe/Paris"``); default the :class:`Cron`'s.
        queue, priority, max_attempts, tags, meta: as for
            :func:`~trunkline.jobs.enqueue`; unset, the worker's (or the defaults).

    Raises:
        InvalidJob: anything above is invalid; the message names the entry.

    Example::

        CronEntry("0 9 * * 1-5", send_digest, {"kind": "daily"}, timezone="Europe/Paris")
    """

    expression: str
    worker: Worker | str
    args: Any = None
    name: str | None = None
    timezone: str | None = None
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    tags: Sequence[str] | None = None
    meta: Mapping[str, Any] | None = None
    schedule: _Schedule = field(init=False, repr=False, compare=False)
    job: NewJob = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        expression: str,
        worker: Worker | str,
        args: Any = None,
        *,
        name: str | None = None,
        timezone: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        tags: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        set_ = object.__setattr__
        for option, value in (
            ("expression", expression),
            ("worker", worker),
            ("args", args),
            ("name", name),
            ("timezone", timezone),
            ("queue", queue),
            ("priority", priority),
            ("max_attempts", max_attempts),
            ("tags", tags),
            ("meta", meta),
        ):
            set_(self, option, value)
        label = f"cron entry {expression!r}"
        if not isinstance(expression, str):
            raise InvalidJob(f"{label}: the expression must be a string")
        try:
            set_(self, "schedule", _Schedule.parse(expression))
        except ValueError as error:
            raise InvalidJob(f"{label}: invalid expression: {error}") from None
        if isinstance(worker, Worker):
            worker_name = worker.name
        elif isinstance(worker, str):
            worker_name = worker
        else:
            raise InvalidJob(f"{label}: worker must be a Worker or a worker's name, not {worker!r}")
        label = f"cron entry {expression!r} -> {worker_name!r}"
        try:
            if name is not None:
                check_name("name", name)
            if timezone is not None:
                _zone(timezone)
            if meta is not None and isinstance(meta, Mapping):
                taken = [key for key in _CRON_META if key in meta]
                if taken:
                    raise InvalidJob(f"meta may not set {taken}: the cron records them")
            options: dict[str, Any] = {
                key: value
                for key, value in (
                    ("queue", queue),
                    ("priority", priority),
                    ("max_attempts", max_attempts),
                    ("tags", tags),
                    ("meta", meta),
                )
                if value is not None
            }
            job = (
                worker.new(args, unique=None, **options)
                if isinstance(worker, Worker)
                else new_job(worker, args, **options)
            )
        except InvalidJob as error:
            raise InvalidJob(f"{label}: {error}") from None
        set_(self, "job", job)

    @property
    def label(self) -> str:
        """What ``meta["cron"]`` records: the name, or the expression."""
        return self.expression if self.name is None else self.name


@dataclass(frozen=True, slots=True)
class _Line:
    """An entry with its zone settled: what the process runs."""

    entry: CronEntry
    zone: tzinfo
    identity: str

    def fires_at(self, tick: datetime) -> bool:
        """Whether the entry fires at the minute ``tick`` (UTC).

        The expression reads the zone's wall clock. An entry whose hour is ``*`` runs by
        elapsed time: it fires at each matching minute the wall clock shows, so nothing
        repeats or goes missing in real time across a DST change. An entry with set hours
        fires once per wall-clock time: a time the clock skips (spring forward) fires at the
        first minute after the gap; a time the clock shows twice (fall back) fires the
        first time only.
        """
        schedule = self.entry.schedule
        local = tick.astimezone(self.zone)
        wall = local.replace(tzinfo=None, fold=0)
        if schedule.every_hour:
            return schedule.matches(wall)
        if local.fold:  # the second pass of a repeated hour
            return False
        if schedule.matches(wall):
            return True
        skipped = (tick - _MINUTE).astimezone(self.zone).replace(tzinfo=None, fold=0) + _MINUTE
        while skipped < wall:  # the wall clock jumped: the minutes it left out
            if schedule.matches(skipped):
                return True
            skipped += _MINUTE
        return False

    def job_at(self, tick: datetime) -> NewJob:
        """The entry's job for ``tick``: unique by the entry and the tick, in every state."""
        at = tick.isoformat()
        template = self.entry.job
        return replace(
            template,
            meta={**template.meta, "cron": self.entry.label, "cron_at": at},
            unique=_TickUnique(period_s=None, states=STATES, identity=f"{self.identity}@{at}"),
        )


@dataclass(frozen=True, slots=True)
class _TickUnique(Unique):
    """Unique by an entry's identity and a tick, rather than by worker, queue and args."""

    identity: str = ""

    def key(self, worker: str, queue: str, args: Any) -> str:
        text = json.dumps(["cron", self.identity], separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# -- the plugin ---------------------------------------------------------------------------------


class Cron:
    """Jobs on a schedule: a :class:`~trunkline.jobs.Plugin` for :class:`~trunkline.jobs.Jobs`.

    Give the same cron to every node: each tick makes one job per matching entry, whichever
    node inserts it first (the others' inserts find it and insert nothing).

    Args:
        entries: :class:`CronEntry` objects, or tuples ``(expression, worker)`` and
            ``(expression, worker, args)``.
        timezone: the zone of the entries that name none (an IANA name; default ``"UTC"``).
        name: the plugin's name in the node's tree (several crons need several names).

    Raises:
        InvalidJob: an entry, the zone or the name is invalid, or two entries are the same
            job (same name, worker, queue, arguments and zone); the message names the entry.

    Example::

        cron = Cron([("@hourly", "stats.roll_up"), ("0 3 * * *", prune, {"days": 30})],
                    timezone="Europe/Paris")
        Jobs(database, registry=registry, plugins=[cron])
    """

    def __init__(
        self,
        entries: Iterable[CronEntry | tuple[Any, ...]],
        *,
        timezone: str = "UTC",
        name: str = "cron",
    ) -> None:
        self.name = check_name("cron name", name)
        zone = _zone(timezone)
        self.timezone = timezone
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise InvalidJob(f"cron entries must be a list of entries, not {entries!r}")
        lines: list[_Line] = []
        seen: set[str] = set()
        for item in entries:
            entry = _entry(item)
            line_zone = zone if entry.timezone is None else _zone(entry.timezone)
            job = entry.job
            identity = json.dumps(
                [entry.label, job.worker, job.queue, job.args_json, str(line_zone)],
                separators=(",", ":"),
            )
            if identity in seen:
                raise InvalidJob(
                    f"cron entry {entry.expression!r} -> {job.worker!r} is there twice "
                    "(give one a name of its own if both are meant)"
                )
            seen.add(identity)
            lines.append(_Line(entry, line_zone, identity))
        self.lines: tuple[_Line, ...] = tuple(lines)

    def __repr__(self) -> str:
        return f"<Cron {self.name!r} entries={len(self.lines)} timezone={self.timezone!r}>"

    @property
    def entries(self) -> tuple[CronEntry, ...]:
        """The entries, in order."""
        return tuple(line.entry for line in self.lines)

    def child_spec(self, jobs: Jobs) -> otp.ChildSpec:
        """The cron's process, for ``jobs``' supervisor."""
        return otp.child_spec(
            CronServer, (self, jobs), id=self.name, name=otp.Via(jobs.names, ("plugin", self.name))
        )

    def fires_at(self, tick: datetime) -> bool:
        """Whether any entry fires at the minute ``tick`` (aware; seconds are ignored)."""
        tick = _floor_minute(tick)
        return any(line.fires_at(tick) for line in self.lines)

    def jobs_at(self, tick: datetime) -> list[NewJob]:
        """The jobs of the minute ``tick`` (aware; seconds are ignored), in entry order."""
        tick = _floor_minute(tick)
        return [line.job_at(tick) for line in self.lines if line.fires_at(tick)]


class CronServer(otp.GenServer):
    """A :class:`Cron`'s process on one node; see the module documentation.

    It keeps the next tick to insert. Woken, it inserts every tick from that one to the
    present (a late wake-up still inserts each tick for its own minute), then sleeps until
    the next minute at which an entry fires (an hour at most). A database failure is logged
    and the same tick is tried again after a backoff; ticks later than :data:`CRON_LATE_LIMIT_S`
    are skipped with a warning.
    """

    def init(self, arg: tuple[Cron, Jobs]) -> otp.Continue:
        self.cron, self.jobs = arg
        self.timer: otp.TimerRef | None = None
        self.failures = 0
        self.next_tick = _ceil_minute(otp.current_node().clock.now())
        return otp.Continue(_TICK)

    async def handle_continue(self, term: Any) -> None:
        await self._run()

    async def handle_info(self, message: Any) -> None:
        if message == _TICK:
            self.timer = None
            await self._run()
        else:
            log.warning("jobs cron %r received an unexpected message: %r", self.cron.name, message)

    async def _run(self) -> None:
        clock = otp.current_node().clock
        now = clock.now()
        oldest = _ceil_minute(now - timedelta(seconds=CRON_LATE_LIMIT_S))
        if self.next_tick < oldest:
            log.warning(
                "jobs cron %r: skipping ticks %s to %s: more than %.0fs late",
                self.cron.name,
                self.next_tick.isoformat(),
                (oldest - _MINUTE).isoformat(),
                CRON_LATE_LIMIT_S,
            )
            self.next_tick = oldest
        while self.next_tick <= now:
            due = self.cron.jobs_at(self.next_tick)
            if due:
                try:
                    await self._insert(self.next_tick, due)
                except db.DatabaseError as error:
                    self._failed(error)
                    return
            self.failures = 0
            self.next_tick += _MINUTE
        self._set_timer((self._next_due() - clock.now()).total_seconds())

    async def _insert(self, tick: datetime, due: list[NewJob]) -> None:
        # In key order: two nodes lock the same keys in the same order, never a deadlock.
        due.sort(key=lambda job: job.unique_key or "")
        stored = await enqueue_many(self.jobs.database, due)
        for job in stored:
            log.debug(
                "jobs cron %r: %s job %d of %r (%s) for %s",
                self.cron.name,
                "found" if job.conflict else "inserted",
                job.id,
                job.worker,
                job.meta.get("cron"),
                tick.isoformat(),
            )

    def _next_due(self) -> datetime:
        tick = self.next_tick
        for _ in range(_LOOK_AHEAD):
            if self.cron.fires_at(tick):
                return tick
            tick += _MINUTE
        return tick

    def _failed(self, error: db.DatabaseError) -> None:
        self.failures += 1
        delay_s = database_retry_s(self.failures)
        log.warning(
            "jobs cron %r: %s: %s; trying the tick %s again in %.2fs",
            self.cron.name,
            type(error).__name__,
            error,
            self.next_tick.isoformat(),
            delay_s,
        )
        self._set_timer(delay_s)

    def _set_timer(self, delay_s: float) -> None:
        if self.timer is not None:
            otp.cancel_timer(self.timer)
        self.timer = otp.send_after(max(0.0, delay_s), self.pid, _TICK)


# -- helpers ------------------------------------------------------------------------------------


def _entry(item: object) -> CronEntry:
    if isinstance(item, CronEntry):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return CronEntry(*item)
    raise InvalidJob(
        "a cron entry is a CronEntry, (expression, worker) or (expression, worker, args), "
        f"not {item!r}"
    )


def _zone(name: object) -> tzinfo:
    if not isinstance(name, str):
        raise InvalidJob(f"timezone must be a zone's name such as 'Europe/Paris', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidJob(f"unknown timezone {name!r}") from None


def _floor_minute(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise InvalidJob(f"a tick must be a timezone-aware datetime, not {at!r}")
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _ceil_minute(at: datetime) -> datetime:
    floor = _floor_minute(at)
    return floor if floor == at else floor + _MINUTE
