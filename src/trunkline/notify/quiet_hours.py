"""Quiet hours: a weekly schedule, read on the wall clock of the user's time zone.

A schedule maps weekdays (``"mon"`` ... ``"sun"``) to ranges ``"HH:MM-HH:MM"``. A range
whose end is not after its start runs overnight, into the next day (``"22:00-07:00"`` on
Monday is Monday 22:00 to Tuesday 07:00); ``"24:00"`` is the end of the day. Ranges that
touch or overlap are one quiet period::

    hours = QuietHours.parse({"mon": ["22:00-07:00"], "sat": ["00:00-24:00"]})
    until = hours.quiet_until(now, ZoneInfo("Europe/Paris"))   # None, or when they end

Wall times become instants in the zone, so a period keeps its wall-clock ends across a DST
change (22:00-07:00 lasts 8 hours on the night the clocks go forward and 10 on the night
they go back). A wall time that does not exist (in the gap of a spring change) is read
with the offset before the change, which lands it after the gap (02:30 -> 03:30); one that
comes twice is the first of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .exceptions import InvalidNotification

__all__ = ["WEEKDAYS", "QuietHours"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""The keys of a schedule, in ``date.weekday()`` order."""

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    """A weekly schedule of quiet periods: per weekday (0 = Monday), ranges of minutes
    since midnight ``(start, end)``, ``end`` possibly past 1440 (overnight)."""

    ranges: tuple[tuple[tuple[int, int], ...], ...]

    @classmethod
    def parse(cls, schedule: Mapping[str, Sequence[str]]) -> QuietHours:
        """The schedule ``{"mon": ["22:00-07:00"], ...}``; weekdays left out have none.

        Raises:
            InvalidNotification: an unknown weekday, a malformed range, or an empty one.
        """
        if not isinstance(schedule, Mapping):
            raise InvalidNotification(f"quiet hours must map weekdays to ranges, not {schedule!r}")
        days: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for day, ranges in schedule.items():
            if day not in WEEKDAYS:
                raise InvalidNotification(
                    f"quiet hours: {day!r} is not one of {', '.join(WEEKDAYS)}"
                )
            if isinstance(ranges, str) or not isinstance(ranges, Sequence):
                raise InvalidNotification(f"quiet hours[{day!r}] must be a list of 'HH:MM-HH:MM'")
            for text in ranges:
                match = _RANGE.match(text) if isinstance(text, str) else None
                if match is None or (match[3] == "24" and match[4] != "00"):
                    raise InvalidNotification(
                        f"quiet hours[{day!r}]: {text!r} is not 'HH:MM-HH:MM'"
                    )
                start = int(match[1]) * 60 + int(match[2])
                end = int(match[3]) * 60 + int(match[4])
                if end == start:
                    raise InvalidNotification(f"quiet hours[{day!r}]: {text!r} is empty")
                if end < start:
                    end += 24 * 60
                days[WEEKDAYS.index(day)].append((start, end))
        return cls(tuple(tuple(sorted(day)) for day in days))

    def to_json(self) -> dict[str, list[str]]:
        """The schedule as :meth:`parse` reads it."""
        out: dict[str, list[str]] = {}
        for name, ranges in zip(WEEKDAYS, self.ranges, strict=True):
            if ranges:
                out[name] = [
                    f"{_hhmm(start)}-{_hhmm(end % 1440 if end != 1440 else end)}"
                    for start, end in ranges
                ]
        return out

    def quiet_until(self, now: datetime, zone: tzinfo) -> datetime | None:
        """``None`` when ``now`` is outside every quiet period, else when the period it is
        in ends (an aware UTC datetime), periods that touch or overlap taken as one."""
        local_day = now.astimezone(zone).date()
        periods = sorted(self._periods(local_day - timedelta(days=1), 9, zone))
        end: datetime | None = None
        for start, stop in periods:
            if end is None:
                if start <= now < stop:
                    end = stop
            elif start <= end:
                end = max(end, stop)
        return end

    def _periods(self, first: date, days: int, zone: tzinfo) -> list[tuple[datetime, datetime]]:
        periods = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            for start, end in self.ranges[day.weekday()]:
                periods.append((_instant(day, start, zone), _instant(day, end, zone)))
        return periods


def _instant(day: date, minutes: int, zone: tzinfo) -> datetime:
    day = day + timedelta(days=minutes // 1440)
    minutes %= 1440
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return wall.astimezone(UTC)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
