"""Plain events sent at once are stored together (notify/bulk.py): a handful of statements
for the batch, the same deliveries as one at a time, the throttle counted across the
batch, and a batch that fails stored again event by event."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from notify_helpers import Backend, RecordingChannel, make_config, mock_clock

from trunkline import db, jobs, notify
from trunkline.notify import bulk
from trunkline.otp import MockClock, telemetry


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


def notifier_on(database: db.Database, backend: Backend, **options: Any) -> notify.Notifier:
    return notify.Notifier(
        database,
        make_config(backend.templates, **options),
        channels=[RecordingChannel(c) for c in ("email", "webpush", "sms")],
        registry=jobs.WorkerRegistry(),
    )


async def test_events_sent_at_once_share_their_statements(backend: Backend) -> None:
    statements: Counter[str] = Counter()

    def on_statement(event: Any, measurements: Any, metadata: dict[str, Any], _: Any) -> None:
        statements[metadata["statement"]] += 1

    async with backend.databases() as [database]:
        notifier = notifier_on(database, backend)
        for user in range(1, 11):
            await notify.set_address(database, user, "email", f"u{user}@example.com")
        with telemetry.attached("statements", [(*db.QUERY_EVENT, "stop")], on_statement):
            results = await asyncio.gather(
                *(
                    notifier.send("chat.mention", [user], actor=99, payload={"n": user})
                    for user in range(1, 11)
                )
            )
        # Ten sends made together: one batch, one statement of each kind. PostgreSQL draws
        # the deliveries' ids first, and writes each delivery once, with its job.
        writes = (
            ["notify.deliveries.draw_ids", "notify.deliveries.insert_drawn"]
            if backend.name == "postgresql"
            else [
                "notify.deliveries.insert_many",
                "notify.deliveries.add_histories",
                "notify.deliveries.jobs",
            ]
        )
        assert statements["notify.events.insert_many"] == 1
        assert statements["jobs.insert_many"] == 1
        assert {name: statements[name] for name in writes} == dict.fromkeys(writes, 1)
        assert sum(name.startswith("notify.deliveries.") for name in statements) == len(writes)
        for user, result in enumerate(results, start=1):
            assert [(d.user_id, d.channel, d.status) for d in result.deliveries] == [
                (user, "inapp", "queued"),
                (user, "email", "queued"),
            ]
            stored = await notify.list_deliveries(database, result.event_id)
            assert [(d.id, d.status, d.job_id) for d in stored] == [
                (d.delivery_id, "queued", d.job_id) for d in result.deliveries
            ]
            for delivery in result.deliveries:
                job = await jobs.get_job(database, delivery.job_id or 0)
                assert job is not None
                assert job.args == {"delivery_id": delivery.delivery_id}
                history = await notify.delivery_history(database, delivery.delivery_id)
                assert [h.status for h in history] == ["queued"]
            event = await database.fetch_one(
                "SELECT category, actor_id, payload, critical FROM notify_events WHERE id = $1",
                result.event_id,
            )
            assert event is not None
            assert tuple(event) == ("chat.mention", 99, f'{{"n": {user}}}', False)


async def test_the_throttle_counts_the_events_of_the_same_batch(backend: Backend) -> None:
    async with backend.databases() as [database]:
        notifier = notifier_on(
            database, backend, throttle=notify.Throttle(window_s=600, threshold=2)
        )
        results = await asyncio.gather(*(notifier.send("chat.mention", [1]) for _ in range(5)))
        inapp = [d.status for r in results for d in r.deliveries if d.channel == "inapp"]
        assert inapp == ["queued", "queued", "suppressed", "suppressed", "suppressed"]
        suppressed = [d for r in results[2:] for d in r.deliveries if d.channel == "inapp"]
        assert {d.reason for d in suppressed} == {"throttle"}


async def test_a_failed_batch_is_stored_again_event_by_event(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = bulk.store

    async def failing(notifier: Any, tx: Any, sends: list[bulk.Pending]) -> Any:
        if any(s.payload == '{"bad": true}' for s in sends):
            raise db.DatabaseError("a statement of the batch failed")
        return await store(notifier, tx, sends)

    async with backend.databases() as [database]:
        notifier = notifier_on(database, backend)
        monkeypatch.setattr("trunkline.notify.notifier.store_plain", failing)
        payloads = [{"n": 1}, {"n": 2}, {"bad": True}, {"n": 4}]
        results = await asyncio.gather(
            *(notifier.send("chat.mention", [1], payload=p) for p in payloads),
            return_exceptions=True,
        )
        assert isinstance(results[2], db.DatabaseError)
        stored = [r for r in results if isinstance(r, notify.EventResult)]
        assert len(stored) == 3
        events = await database.fetch("SELECT payload FROM notify_events ORDER BY id")
        assert [row[0] for row in events] == ['{"n": 1}', '{"n": 2}', '{"n": 4}']


async def test_ids_beyond_a_bigint_are_refused(backend: Backend) -> None:
    async with backend.databases() as [database]:
        notifier = notifier_on(database, backend)
        with pytest.raises(notify.InvalidNotification, match="actor"):
            await notifier.send("chat.mention", [1], actor=2**63)
        with pytest.raises(notify.InvalidNotification, match="recipients"):
            await notifier.send("chat.mention", [2**64])
        assert await database.fetch_val("SELECT count(*) FROM notify_events") == 0
