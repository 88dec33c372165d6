"""Notifier.send: deliveries per recipient x channel, preferences, idempotency, throttle,
bad input; each delivery a job of the real queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from notify_helpers import Backend, RecordingChannel, make_config, mock_clock, run_due, setup

from trunkline import jobs, notify, otp
from trunkline.jobs.testing import all_enqueued
from trunkline.otp import MockClock, telemetry


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


async def count(database: object, table: str) -> int:
    return int(await database.fetch_val(f"SELECT count(*) FROM {table}"))  # type: ignore[attr-defined]


async def test_an_event_is_a_delivery_per_recipient_and_channel_each_a_job(
    backend: Backend,
) -> None:
    async with setup(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        with telemetry.capture(
            [notify.EVENT_RECEIVED, notify.delivery_event("queued"), notify.delivery_event("sent")]
        ) as seen:
            result = await r.notifier.send("chat.mention", [1], actor=2, payload={"text": "hi"})
            assert [(d.user_id, d.channel, d.status) for d in result.deliveries] == [
                (1, "inapp", "queued"),
                (1, "email", "queued"),
            ]
            jobs_ = await all_enqueued(r.database, worker=notify.WORKER)
            assert sorted(j.args["delivery_id"] for j in jobs_) == [
                d.delivery_id for d in result.deliveries
            ]
            drained = await r.run()
        assert drained.completed == 2
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "delivered", None),
            (1, "email", "sent", None),
        ]
        [(envelope, message)] = r.channels["email"].sent
        assert envelope.address == "ada@example.com"
        assert envelope.category == "chat.mention"
        assert message.text.startswith("hi")
        email = await notify.get_delivery(r.database, result.deliveries[1].delivery_id)
        assert email is not None
        assert email.provider_id == f"email-{email.id}"
        assert email.attempts == 1
        history = await notify.delivery_history(r.database, email.id)
        assert [h.status for h in history] == ["queued", "sent"]
        names = [e.event[-1] for e in seen]
        assert names == ["received", "queued", "queued", "sent"]  # inbox is "delivered"
        assert seen[1].metadata["channel"] == "inapp"
        assert seen[1].metadata["category"] == "chat.mention"


async def test_bad_input_is_refused_and_nothing_is_stored(backend: Backend) -> None:
    async with setup(backend) as r:
        send = r.notifier.send
        with pytest.raises(notify.UnknownCategory, match="unknown category 'nope'"):
            await send("nope", [1])
        with pytest.raises(notify.InvalidNotification, match="recipients is empty"):
            await send("chat.mention", [])
        with pytest.raises(notify.InvalidNotification, match="user ids"):
            await send("chat.mention", ["ada"])  # type: ignore[list-item]
        with pytest.raises(notify.InvalidNotification, match="payload is not JSON"):
            await send("chat.mention", [1], payload={"when": datetime.now(UTC)})
        with pytest.raises(notify.InvalidNotification, match="read back"):
            await send("chat.mention", [1], payload={"pair": (1, 2)})
        with pytest.raises(notify.InvalidNotification, match="aware datetime"):
            await send("chat.mention", [1], send_at=datetime(2026, 1, 1))
        with pytest.raises(notify.InvalidNotification, match="idempotency_key"):
            await send("chat.mention", [1], idempotency_key="")
        for table in ("notify_events", "notify_deliveries", "notify_event_keys", "trunkline_jobs"):
            assert await count(r.database, table) == 0


async def test_a_repeat_with_the_same_key_returns_the_first_result_and_stores_nothing(
    backend: Backend, clock: MockClock
) -> None:
    async with setup(backend) as r:
        first = await r.notifier.send("chat.mention", [1, 2], idempotency_key="msg-7")
        again = await r.notifier.send("chat.mention", [1, 2, 3], idempotency_key="msg-7")
        assert again.duplicate
        assert not first.duplicate
        assert again.event_id == first.event_id
        assert again.deliveries == first.deliveries
        assert await count(r.database, "notify_events") == 1
        assert await count(r.database, "notify_deliveries") == 4  # email: no address
        assert await count(r.database, "trunkline_jobs") == 2
        clock.jump(24 * 3600 + 1)  # the key is forgotten after 24 hours
        later = await r.notifier.send("chat.mention", [1], idempotency_key="msg-7")
        assert not later.duplicate
        assert later.event_id != first.event_id


async def test_two_concurrent_sends_with_one_key_make_one_event(backend: Backend) -> None:
    async with backend.databases(2) as [one, two]:
        config = make_config(backend.templates)
        notifiers = [
            notify.Notifier(
                d, config, channels=[RecordingChannel(c) for c in ("email", "webpush", "sms")]
            )
            for d in (one, two)
        ]
        results = await asyncio.gather(
            *(n.send("chat.mention", [1], idempotency_key="k") for n in notifiers)
        )
        assert {r.event_id for r in results} == {results[0].event_id}
        assert sorted(r.duplicate for r in results) == [False, True]
        assert await count(one, "notify_events") == 1
        assert await count(one, "notify_deliveries") == 2  # inapp; email: no address


async def test_preferences_unset_means_the_category_default(backend: Backend) -> None:
    async with setup(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await notify.set_address(r.database, 1, "sms", "+33600000000")
        result = await r.notifier.send("news", [1])
        # news: email off by default, sms on
        assert await r.statuses(result.event_id) == [
            (1, "email", "suppressed", "preference"),
            (1, "sms", "queued", None),
        ]
        await notify.set_preference(r.database, 1, "news", "email", True)
        await notify.set_preference(r.database, 1, "news", "sms", False)
        result = await r.notifier.send("news", [1])
        assert await r.statuses(result.event_id) == [
            (1, "email", "queued", None),
            (1, "sms", "suppressed", "preference"),
        ]


async def test_a_channel_preference_wins_over_the_all_channels_one(backend: Backend) -> None:
    async with setup(backend) as r:
        await notify.set_preference(r.database, 1, "chat.mention", None, False)
        await notify.set_preference(r.database, 1, "chat.mention", "inapp", True)
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        result = await r.notifier.send("chat.mention", [1])
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "queued", None),
            (1, "email", "suppressed", "preference"),
        ]
        assert await notify.get_preferences(r.database, 1) == {
            ("chat.mention", None): False,
            ("chat.mention", "inapp"): True,
        }


async def test_critical_bypasses_preferences_but_not_a_missing_address(backend: Backend) -> None:
    async with setup(backend) as r:
        await notify.set_preference(r.database, 1, "chat.mention", None, False)
        result = await r.notifier.send("chat.mention", [1], critical=True)
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "queued", None),
            (1, "email", "suppressed", "no_address"),
        ]


async def test_a_recipient_listed_twice_is_delivered_once(backend: Backend) -> None:
    async with setup(backend) as r:
        result = await r.notifier.send("chat.direct_message", [1, 1])
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "queued", None),
            (1, "webpush", "suppressed", "no_address"),
            (1, "inapp", "suppressed", "duplicate"),
            (1, "webpush", "suppressed", "duplicate"),
        ]


async def test_the_throttle_suppresses_the_excess_and_records_it(
    backend: Backend, clock: MockClock
) -> None:
    async with backend.databases() as [database]:
        config = make_config(backend.templates, throttle=notify.Throttle(window_s=600, threshold=2))
        registry = jobs.WorkerRegistry()
        notifier = notify.Notifier(
            database,
            config,
            channels=[RecordingChannel(c) for c in ("email", "webpush", "sms")],
            registry=registry,
        )
        results = [await notifier.send("chat.direct_message", [1, 2]) for _ in range(2)]
        with telemetry.capture([notify.delivery_event("suppressed")]) as seen:
            third = await notifier.send("chat.direct_message", [1])
        assert all(
            d.status == "queued" for r in results for d in r.deliveries if d.channel == "inapp"
        )
        assert [(d.channel, d.status, d.reason) for d in third.deliveries] == [
            ("inapp", "suppressed", "throttle"),
            ("webpush", "suppressed", "no_address"),
        ]
        assert [e.metadata["reason"] for e in seen] == ["throttle", "no_address"]
        critical = await notifier.send("chat.direct_message", [1], critical=True)
        assert critical.deliveries[0].status == "queued"
        clock.jump(601)  # the window has passed
        later = await notifier.send("chat.direct_message", [1])
        assert later.deliveries[0].status == "queued"


async def test_send_at_schedules_the_job(backend: Backend, clock: MockClock) -> None:
    async with setup(backend) as r:
        at = clock.now() + timedelta(hours=2)
        result = await r.notifier.send("chat.direct_message", [1], send_at=at)
        assert result.deliveries[0].scheduled_at == at
        assert (await r.run()).total == 0
        clock.jump(2 * 3600)
        assert (await run_due(r)).completed == 1
        assert (await r.statuses(result.event_id))[0][2] == "delivered"


async def test_writes_join_the_callers_transaction(backend: Backend) -> None:
    async with setup(backend) as r:

        async def send_then_fail() -> None:
            async with r.database.transaction() as tx:
                await r.notifier.send("chat.mention", [1], tx=tx)
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            await send_then_fail()
        for table in ("notify_events", "notify_deliveries", "trunkline_jobs"):
            assert await count(r.database, table) == 0
        async with r.database.transaction() as tx:
            await r.notifier.send("chat.mention", [1], tx=tx)
        assert await count(r.database, "trunkline_jobs") == 1


def test_a_category_using_a_channel_not_given_is_refused(tmp_path: object) -> None:
    config = notify.NotifyConfig(
        categories={"alerts": notify.Category({"inapp": True, "sms": True})}
    )
    with pytest.raises(notify.InvalidConfig, match="no channel given for 'sms'"):
        notify.Notifier(None, config)  # type: ignore[arg-type]
    _ = otp


async def test_a_users_deliveries_come_newest_first_a_page_at_a_time(backend: Backend) -> None:
    from trunkline.notify.user_deliveries import user_deliveries

    async with setup(backend) as r:
        for n in range(5):
            await r.notifier.send("chat.mention", [1, 2], payload={"text": f"m{n}"})
        mine = []
        cursor = None
        while True:
            page, cursor = await user_deliveries(r.database, 1, cursor=cursor, limit=3)
            mine.extend(page)
            if cursor is None:
                break
        # Per event, in-app and email (suppressed: user 1 has no address): both are records.
        assert len(mine) == 10
        assert [d.id for d in mine] == sorted((d.id for d in mine), reverse=True)
        assert {d.user_id for d in mine} == {1}
        assert all(d.category == "chat.mention" for d in mine)
        with pytest.raises(notify.InvalidNotification):
            await user_deliveries(r.database, 1, limit=0)
