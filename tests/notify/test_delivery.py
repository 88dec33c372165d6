"""The notify.deliver job: retries, permanent failures, addresses gone, re-runs, the
circuit breaker, the unsubscribe headers of emails."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from notify_helpers import (
    Backend,
    Recording,
    RecordingChannel,
    eventually,
    mock_clock,
    run_due,
    setup,
)

from trunkline import db, jobs, notify, otp
from trunkline.notify.breaker import CircuitBreaker
from trunkline.otp import MockClock, telemetry

PUSH: dict[str, Any] = {
    "endpoint": "https://push.example.com/abc",
    "keys": {"p256dh": "k", "auth": "a"},
}


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


def channels(
    *, transient: int = 0, permanent: bool = False, gone: bool = False
) -> list[RecordingChannel]:
    email = RecordingChannel("email", transient=transient, permanent=permanent, gone=gone)
    return [email, RecordingChannel("webpush"), RecordingChannel("sms")]


async def email_delivery(r: Recording, user: int = 1) -> notify.DeliveryResult:
    await notify.set_address(r.database, user, "email", "ada@example.com")
    await notify.set_preference(r.database, user, "chat.mention", "inapp", False)
    result = await r.notifier.send("chat.mention", [user], payload={"text": "hi"})
    [delivery] = result.queued
    assert delivery.channel == "email"
    return delivery


async def test_transient_failures_are_retried_then_sent(backend: Backend) -> None:
    async with setup(backend, channels=channels(transient=2)) as r:
        delivery = await email_delivery(r)
        drained = await r.run(with_scheduled=True)
        assert (drained.retryable, drained.completed) == (2, 1)
        stored = await notify.get_delivery(r.database, delivery.delivery_id)
        assert stored is not None
        assert (stored.status, stored.attempts) == ("sent", 3)
        history = await notify.delivery_history(r.database, delivery.delivery_id)
        assert [h.status for h in history] == ["queued", "failed", "failed", "sent"]
        assert history[1].detail == "attempt 1 of 10: 503 try later; retrying"


async def test_the_last_attempt_fails_the_delivery(backend: Backend) -> None:
    async with setup(backend, channels=channels(transient=5), max_attempts=2) as r:
        delivery = await email_delivery(r)
        drained = await r.run(with_scheduled=True)
        assert (drained.retryable, drained.discarded) == (1, 1)
        stored = await notify.get_delivery(r.database, delivery.delivery_id)
        assert stored is not None
        assert stored.status == "failed"
        assert r.channels["email"].calls == 2
        job = await jobs.get_job(r.database, delivery.job_id or 0)
        assert job is not None
        assert job.state == "discarded"


async def test_a_permanent_failure_is_not_retried(backend: Backend) -> None:
    async with setup(backend, channels=channels(permanent=True)) as r:
        delivery = await email_delivery(r)
        with telemetry.capture([notify.delivery_event("failed")]) as seen:
            drained = await r.run(with_scheduled=True)
        assert (drained.discarded, drained.retryable, drained.completed) == (1, 0, 0)
        assert r.channels["email"].calls == 1
        stored = await notify.get_delivery(r.database, delivery.delivery_id)
        assert stored is not None
        assert stored.status == "failed"
        assert [e.metadata["channel"] for e in seen] == ["email"]
        assert seen[0].metadata["reason"] == "400 bad address"
        assert await notify.get_address(r.database, 1, "email") == "ada@example.com"


async def test_an_address_gone_is_removed(backend: Backend) -> None:
    async with setup(backend, channels=channels(gone=True)) as r:
        await email_delivery(r)
        drained = await r.run(with_scheduled=True)
        assert drained.discarded == 1
        assert await notify.get_address(r.database, 1, "email") is None


async def test_a_push_subscription_gone_is_removed(backend: Backend) -> None:
    push = RecordingChannel("webpush", gone=True)
    chans = [RecordingChannel("email"), push, RecordingChannel("sms")]
    async with setup(backend, channels=chans) as r:
        await notify.add_push_subscription(r.database, 1, PUSH)
        await notify.add_push_subscription(
            r.database, 1, {**PUSH, "endpoint": PUSH["endpoint"] + "2"}
        )
        result = await r.notifier.send("chat.direct_message", [1])
        assert [d.channel for d in result.queued] == ["inapp", "webpush", "webpush"]
        await r.run(with_scheduled=True)
        assert push.calls == 2
        assert await notify.list_push_subscriptions(r.database, 1) == []
        assert await r.statuses(result.event_id) == [
            (1, "inapp", "delivered", None),
            (1, "webpush", "failed", None),
            (1, "webpush", "failed", None),
        ]


async def test_a_job_run_again_does_not_send_twice(backend: Backend) -> None:
    async with setup(backend) as r:
        delivery = await email_delivery(r)
        assert (await r.run()).completed == 1
        job = await jobs.retry_job(r.database, delivery.job_id or 0)
        assert job is not None
        assert job.state == "available"
        assert (await r.run()).completed == 1
        assert len(r.channels["email"].sent) == 1


async def test_an_open_breaker_snoozes_the_job_without_an_attempt(
    backend: Backend, clock: MockClock
) -> None:
    breaker = CircuitBreaker("email", failure_threshold=1, cooldown_s=60)
    async with setup(backend, channels=channels(transient=1), breakers={"email": breaker}) as r:
        delivery = await email_delivery(r)
        assert (await r.run()).retryable == 1
        assert not breaker.allow()
        clock.jump(25)  # the retry is due (about 17 s), the breaker still open
        assert (await run_due(r)).snoozed == 1
        job = await jobs.get_job(r.database, delivery.job_id or 0)
        assert job is not None
        assert (job.state, job.attempt) == ("scheduled", 1)
        assert r.channels["email"].calls == 1
        clock.jump(36)
        assert (await run_due(r)).completed == 1
        stored = await notify.get_delivery(r.database, delivery.delivery_id)
        assert stored is not None
        assert stored.status == "sent"


async def test_emails_carry_the_one_click_unsubscribe_headers(backend: Backend) -> None:
    async with setup(backend) as r:
        await email_delivery(r, user=5)
        await r.run()
        [(envelope, message)] = r.channels["email"].sent
        url = notify.unsubscribe_url(r.notifier.config, 5, "chat.mention")
        assert envelope.headers == {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert message.html is not None
        assert f'href="{url}"' in message.html
        assert url in message.text
        [token] = parse_qs(urlsplit(url).query)["token"]
        assert await notify.unsubscribe(r.database, r.notifier.config, token) == (5, "chat.mention")
        result = await r.notifier.send("chat.mention", [5])
        assert (await r.statuses(result.event_id))[1] == (5, "email", "suppressed", "preference")


class GatheringChannel(RecordingChannel):
    """Holds each send until ``count`` are in flight: deliveries that run at once."""

    def __init__(self, name: str, count: int) -> None:
        super().__init__(name)
        self.count = count
        self.all_in = asyncio.Event()

    async def send(self, envelope: notify.Envelope, message: notify.Rendered) -> notify.Sent:
        if self.calls + 1 >= self.count:
            self.all_in.set()
        self.calls += 1
        await self.all_in.wait()
        self.sent.append((envelope, message))
        return notify.Sent(provider_id=f"p-{envelope.delivery_id}")


async def test_deliveries_running_at_once_share_their_statements(
    backend: Backend, clock: MockClock
) -> None:
    count = 12
    email = GatheringChannel("email", count)
    statements: Counter[str] = Counter()

    def on_statement(event: Any, measurements: Any, metadata: dict[str, Any], _: Any) -> None:
        statements[metadata["statement"]] += 1

    async with setup(
        backend, channels=[email, RecordingChannel("webpush"), RecordingChannel("sms")]
    ) as r:
        deliveries = []
        for user in range(1, count + 1):
            await notify.set_address(r.database, user, "email", f"u{user}@example.com")
            await notify.set_preference(r.database, user, "chat.mention", "inapp", False)
            result = await r.notifier.send("chat.mention", [user], payload={"text": "hi"})
            deliveries += result.queued
        node = jobs.Jobs(
            r.database, registry=r.registry, queues={"notify": count}, node="n", migrate=False
        )
        with telemetry.attached("statements", [(*db.QUERY_EVENT, "stop")], on_statement):
            supervisor = await node.start()
            try:

                async def all_sent() -> bool:
                    stored = [
                        await notify.get_delivery(r.database, d.delivery_id) for d in deliveries
                    ]
                    return all(s is not None and s.status == "sent" for s in stored)

                await eventually(all_sent, "every delivery sent")
            finally:
                await otp.stop(supervisor, "shutdown")
        assert sorted(e.delivery_id for e, _ in email.sent) == sorted(
            d.delivery_id for d in deliveries
        )  # each sent once
        for delivery in deliveries:
            history = await notify.delivery_history(r.database, delivery.delivery_id)
            assert [h.status for h in history] == ["queued", "sent"]
            stored = await notify.get_delivery(r.database, delivery.delivery_id)
            assert stored is not None
            assert (stored.attempts, stored.provider_id) == (1, f"p-{delivery.delivery_id}")
        # Twelve deliveries in flight together: a handful of statements, not one each.
        assert 1 <= statements["notify.deliver.take"] < count
        assert 1 <= statements["notify.deliver.sent"] <= 2
