"""Fallback: in-app first, then email if the in-app item is not read (or archived) in time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from notify_helpers import SECRET, Backend, Recording, RecordingChannel, mock_clock, run_due, setup

from trunkline import notify
from trunkline.otp import MockClock, telemetry

AFTER_S = 600


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


def fallback_config() -> notify.NotifyConfig:
    return notify.NotifyConfig(
        categories={
            "chat.direct_message": notify.Category(
                {"inapp": True, "email": True}, fallback=notify.Fallback("email", AFTER_S)
            ),
        },
        unsubscribe_secret=SECRET,
        unsubscribe_url="https://example.com/notify/unsubscribe",
    )


def setup_fallback(backend: Backend) -> Any:
    return setup(backend, channels=[RecordingChannel("email")], config=fallback_config())


async def message(r: Recording, clock: MockClock) -> notify.EventResult:
    """A direct message to user 1, whose in-app item is delivered at once."""
    await notify.set_address(r.database, 1, "email", "ada@example.com")
    result = await r.notifier.send(
        "chat.direct_message", [1], payload={"sender_name": "Bob", "text": "lunch?"}
    )
    inapp, email = result.deliveries
    assert (inapp.channel, inapp.status, inapp.reason) == ("inapp", "queued", None)
    assert (email.channel, email.status, email.reason) == ("email", "queued", "fallback")
    assert email.scheduled_at == clock.now() + timedelta(seconds=AFTER_S)
    assert (await r.run()).completed == 1  # the inbox; the email waits
    return result


async def test_read_in_time_suppresses_the_email(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        result = await message(r, clock)
        [item] = (await notify.list_inbox(r.database, 1)).items
        clock.jump(AFTER_S - 60)
        assert await notify.mark_read(r.database, 1, item.id)
        events = [notify.fallback_event("suppressed"), notify.fallback_event("sent")]
        with telemetry.capture(events) as seen:
            clock.jump(60)
            assert (await run_due(r)).completed == 1
        assert r.channels["email"].sent == []
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "read", None),
            (1, "email", "suppressed", "read"),
        ]
        email = result.deliveries[1].delivery_id
        history = await notify.delivery_history(r.database, email)
        assert [h.status for h in history] == ["queued", "suppressed"]
        assert history[1].detail == f"read: in-app delivery {email - 1} was read"
        assert [e.event[-1] for e in seen] == ["suppressed"]
        assert seen[0].metadata["seen"] == "read"


async def test_not_read_the_email_goes_after_the_delay(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        result = await message(r, clock)
        clock.jump(AFTER_S - 1)
        assert (await run_due(r)).completed == 0
        with telemetry.capture([notify.fallback_event("sent")]) as seen:
            clock.jump(1)
            assert (await run_due(r)).completed == 1
        [(envelope, sent)] = r.channels["email"].sent
        assert envelope.address == "ada@example.com"
        assert sent.text.startswith("lunch?")
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "delivered", None),
            (1, "email", "sent", "fallback"),
        ]
        [event] = seen
        assert event.metadata["after_delivery_id"] == result.deliveries[0].delivery_id


async def test_an_archived_item_counts_as_seen(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        result = await message(r, clock)
        [item] = (await notify.list_inbox(r.database, 1)).items
        assert await notify.archive(r.database, 1, item.id)
        clock.jump(AFTER_S)
        await run_due(r)
        assert r.channels["email"].sent == []
        assert (await r.statuses(result.event_id))[1] == (1, "email", "suppressed", "read")
        history = await notify.delivery_history(r.database, result.deliveries[1].delivery_id)
        assert history[-1].detail is not None
        assert history[-1].detail.endswith("was archived")


async def test_email_turned_off_makes_no_fallback(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await notify.set_preference(r.database, 1, "chat.direct_message", "email", False)
        result = await r.notifier.send("chat.direct_message", [1], payload={"text": "hi"})
        assert [(d.channel, d.status, d.reason, d.job_id) for d in result.deliveries][1] == (
            "email",
            "suppressed",
            "preference",
            None,
        )
        await r.run(with_scheduled=True)
        assert r.channels["email"].sent == []
        assert len((await notify.list_inbox(r.database, 1)).items) == 1


async def test_without_the_inbox_the_email_goes_at_once(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await notify.set_preference(r.database, 1, "chat.direct_message", "inapp", False)
        result = await r.notifier.send("chat.direct_message", [1], payload={"text": "hi"})
        assert [(d.channel, d.status, d.reason) for d in result.deliveries] == [
            ("inapp", "suppressed", "preference"),
            ("email", "queued", None),
        ]
        assert (await r.run()).completed == 1
        assert len(r.channels["email"].sent) == 1


async def test_quiet_hours_at_the_fallback_time_hold_it(backend: Backend, clock: MockClock) -> None:
    async with setup_fallback(backend) as r:
        now = clock.now()
        start = now + timedelta(seconds=300)
        end = now + timedelta(hours=2)
        day = start.strftime("%a").lower()
        await notify.set_user_settings(
            r.database,
            1,
            time_zone="UTC",
            quiet_hours={day: [f"{start:%H:%M}-{end:%H:%M}"]},
        )
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        result = await r.notifier.send("chat.direct_message", [1], payload={"text": "hi"})
        inapp, email = result.deliveries
        assert inapp.reason is None  # now is before the quiet hours
        assert email.reason == "quiet_hours"
        assert email.scheduled_at is not None
        assert email.scheduled_at == end.replace(second=0, microsecond=0)
        history = await notify.delivery_history(r.database, email.delivery_id)
        assert history[0].detail is not None
        assert history[0].detail.startswith("fallback: sent if in-app delivery")


def test_a_fallback_is_checked() -> None:
    with pytest.raises(notify.InvalidConfig, match="another channel"):
        notify.Fallback("inapp", 60)
    with pytest.raises(notify.InvalidConfig, match="after_s"):
        notify.Fallback("email", -1)
    with pytest.raises(notify.InvalidConfig, match="must use 'inapp', then 'email'"):
        notify.Category({"email": True, "inapp": True}, fallback=notify.Fallback("email", 60))
    with pytest.raises(notify.InvalidConfig, match="cannot be combined"):
        notify.Category(
            {"inapp": True, "email": True},
            fallback=notify.Fallback("email", 60),
            digest=notify.Digest(60),
        )


async def test_the_delay_counts_from_the_end_of_quiet_hours(
    backend: Backend, clock: MockClock
) -> None:
    async with setup_fallback(backend) as r:
        now = clock.now()
        end = now + timedelta(hours=2)
        day = now.strftime("%a").lower()
        await notify.set_user_settings(
            r.database, 1, time_zone="UTC", quiet_hours={day: [f"{now:%H:%M}-{end:%H:%M}"]}
        )
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        result = await r.notifier.send("chat.direct_message", [1], payload={"text": "hi"})
        inapp, email = result.deliveries
        assert (inapp.reason, email.reason) == ("quiet_hours", "fallback")
        assert inapp.scheduled_at == end.replace(second=0, microsecond=0)
        assert email.scheduled_at == inapp.scheduled_at + timedelta(seconds=AFTER_S)
