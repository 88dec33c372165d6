"""Quiet hours: the weekly schedule in the user's zone, across DST changes, and deliveries
held until they end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from notify_helpers import Backend, mock_clock, run_due, setup

from trunkline import notify
from trunkline.otp import MockClock

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
NIGHTS = notify.QuietHours.parse({day: ["22:00-07:00"] for day in notify.WEEKDAYS})


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_outside_quiet_hours_is_none() -> None:
    assert NIGHTS.quiet_until(utc(2026, 6, 10, 12, 0), PARIS) is None
    assert NIGHTS.quiet_until(utc(2026, 6, 10, 19, 59), PARIS) is None  # 21:59 CEST


def test_an_overnight_range_ends_the_next_morning() -> None:
    # Wednesday 23:30 CEST -> Thursday 07:00 CEST (05:00 UTC)
    assert NIGHTS.quiet_until(utc(2026, 6, 10, 21, 30), PARIS) == utc(2026, 6, 11, 5, 0)
    # just after midnight, the range begun the day before
    assert NIGHTS.quiet_until(utc(2026, 6, 10, 22, 30), PARIS) == utc(2026, 6, 11, 5, 0)


def test_across_the_spring_change_in_paris() -> None:
    # Sat 28 March 2026 23:00 CET (22:00 UTC); clocks go 02:00 -> 03:00 on Sunday 29.
    until = NIGHTS.quiet_until(utc(2026, 3, 28, 22, 0), PARIS)
    assert until == utc(2026, 3, 29, 5, 0)  # 07:00 CEST
    assert until.astimezone(PARIS).hour == 7
    assert until - utc(2026, 3, 28, 21, 0) == timedelta(hours=8)  # a night one hour shorter


def test_across_the_autumn_change_in_paris() -> None:
    # Sat 24 October 2026 23:00 CEST (21:00 UTC); clocks go 03:00 -> 02:00 on Sunday 25.
    until = NIGHTS.quiet_until(utc(2026, 10, 24, 21, 0), PARIS)
    assert until == utc(2026, 10, 25, 6, 0)  # 07:00 CET
    assert until - utc(2026, 10, 24, 20, 0) == timedelta(hours=10)


def test_a_range_in_the_spring_gap_and_new_york() -> None:
    hours = notify.QuietHours.parse({"sun": ["01:00-02:30"]})
    # 8 March 2026, New York: 02:00 EST -> 03:00 EDT; 02:30 does not exist: read as 03:30
    until = hours.quiet_until(utc(2026, 3, 8, 6, 30), NEW_YORK)  # 01:30 EST
    assert until == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert hours.quiet_until(utc(2026, 3, 8, 7, 30), NEW_YORK) is None


def test_ranges_that_touch_are_one_period() -> None:
    hours = notify.QuietHours.parse(
        {"fri": ["20:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-09:00"]}
    )
    assert hours.quiet_until(utc(2026, 6, 12, 21, 0), UTC) == utc(2026, 6, 14, 9, 0)


@pytest.mark.parametrize(
    "schedule",
    [
        {"monday": ["22:00-07:00"]},
        {"mon": ["22-07"]},
        {"mon": ["25:00-07:00"]},
        {"mon": ["07:00-07:00"]},
        {"mon": "22:00-07:00"},
    ],
)
def test_a_malformed_schedule_is_refused(schedule: dict[str, object]) -> None:
    with pytest.raises(notify.InvalidNotification, match="quiet hours"):
        notify.QuietHours.parse(schedule)  # type: ignore[arg-type]


class TestHeldDeliveries:
    @pytest.fixture
    def clock(self) -> MockClock:
        # Saturday 28 March 2026, 23:00 in Paris: inside quiet hours, before the DST change
        return mock_clock(utc(2026, 3, 28, 22, 0))

    async def test_held_until_quiet_hours_end_then_delivered(
        self, backend: Backend, clock: MockClock
    ) -> None:
        async with setup(backend) as r:
            await notify.set_user_settings(
                r.database, 1, time_zone="Europe/Paris", quiet_hours=NIGHTS.to_json()
            )
            result = await r.notifier.send("chat.direct_message", [1, 2])
            held, now = result.deliveries[0], result.deliveries[2]
            assert (held.user_id, held.status, held.reason) == (1, "queued", "quiet_hours")
            assert held.scheduled_at == utc(2026, 3, 29, 5, 0)  # 07:00 CEST
            assert (now.user_id, now.reason) == (2, None)
            assert (await r.run()).completed == 1  # user 2's only
            clock.jump(7 * 3600 - 1)  # 06:59:59 CEST
            assert (await run_due(r)).total == 0
            clock.jump(1)
            assert (await run_due(r)).completed == 1
            assert (await r.statuses(result.event_id))[0] == (
                1,
                "inapp",
                "delivered",
                "quiet_hours",
            )
            history = await notify.delivery_history(r.database, held.delivery_id)
            assert history[0].detail == "held by quiet hours until 2026-03-29T05:00:00+00:00"

    async def test_critical_events_are_not_held(self, backend: Backend) -> None:
        async with setup(backend) as r:
            await notify.set_user_settings(
                r.database, 1, time_zone="Europe/Paris", quiet_hours=NIGHTS
            )
            result = await r.notifier.send("chat.direct_message", [1], critical=True)
            assert result.deliveries[0].reason is None
            assert (await r.run()).completed == 1

    async def test_settings_are_checked_and_stored(self, backend: Backend) -> None:
        async with setup(backend) as r:
            with pytest.raises(notify.InvalidNotification, match="IANA"):
                await notify.set_user_settings(r.database, 1, time_zone="Mars/Olympus")
            assert await notify.get_user_settings(r.database, 1) == notify.UserSettings()
            await notify.set_user_settings(
                r.database, 1, time_zone="Europe/Paris", locale="fr", quiet_hours=NIGHTS
            )
            assert await notify.get_user_settings(r.database, 1) == notify.UserSettings(
                "Europe/Paris", "fr", NIGHTS
            )

    async def test_a_send_at_inside_quiet_hours_is_held_from_then(
        self, backend: Backend, clock: MockClock
    ) -> None:
        async with setup(backend) as r:
            hours = {"sun": ["12:00-14:00"]}
            await notify.set_user_settings(
                r.database, 1, time_zone="America/New_York", quiet_hours=hours
            )
            # now: Saturday 28 March, 18:00 EDT; send at Sunday 13:00 EDT, inside
            result = await r.notifier.send("chat.direct_message", [1], send_at=utc(2026, 3, 29, 17))
            [delivery, _] = result.deliveries
            assert (delivery.reason, delivery.scheduled_at) == ("quiet_hours", utc(2026, 3, 29, 18))
