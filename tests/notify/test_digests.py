"""Digests: events gathered per user, one summary per channel when the window closes,
sent exactly once even when the summary fails or the digest job runs again after a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import (
    SECRET,
    Backend,
    Recording,
    RecordingChannel,
    eventually,
    mock_clock,
    run_due,
    setup,
)

import pg
from trunkline import db, jobs, notify, otp
from trunkline.notify.digests import seal
from trunkline.otp import MockClock, telemetry

WINDOW_S = 600


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


def digest_config(**options: Any) -> notify.NotifyConfig:
    return notify.NotifyConfig(
        categories={
            "chat.mention": notify.Category(
                {"inapp": True, "email": True}, digest=notify.Digest(WINDOW_S)
            ),
            "chat.direct_message": notify.Category(
                {"inapp": True}, digest=notify.Digest(WINDOW_S, key="room_id")
            ),
        },
        unsubscribe_secret=SECRET,
        unsubscribe_url="https://example.com/notify/unsubscribe",
        **options,
    )


async def mentions(r: Recording, texts: list[str], clock: MockClock, user: int = 1) -> list[int]:
    """Send a mention per text, 10 s apart; the event ids."""
    ids = []
    for text in texts:
        result = await r.notifier.send(
            "chat.mention", [user], payload={"sender_name": "Bob", "text": text}
        )
        assert [(d.channel, d.status) for d in result.deliveries] == [
            ("inapp", "digested"),
            ("email", "digested"),
        ]
        ids.append(result.event_id)
        clock.jump(10)
    return ids


async def digests(database: db.Database) -> list[tuple[str, list[int] | None]]:
    rows = await database.fetch("SELECT status, event_ids FROM notify_digests ORDER BY id")
    return [(r["status"], json.loads(r["event_ids"]) if r["event_ids"] else None) for r in rows]


async def summaries(database: db.Database, channel: str) -> list[notify.Delivery]:
    rows = await database.fetch(
        "SELECT d.id FROM notify_deliveries AS d "
        "JOIN notify_digests AS g ON g.summary_event_id = d.event_id "
        "WHERE d.channel = $1 ORDER BY d.id",
        channel,
    )
    out = []
    for row in rows:
        delivery = await notify.get_delivery(database, row["id"])
        assert delivery is not None
        out.append(delivery)
    return out


def setup_digests(backend: Backend, email: RecordingChannel | None = None) -> Any:
    return setup(backend, channels=[email or RecordingChannel("email")], config=digest_config())


async def test_events_within_the_window_are_one_summary_delivered_once(
    backend: Backend, clock: MockClock
) -> None:
    events = [notify.digest_event(name) for name in ("opened", "sealed", "sent")]
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        with telemetry.capture(events) as seen:
            ids = await mentions(r, [f"message {i}" for i in range(5)], clock)
            assert (await r.run()).completed == 0  # nothing is sent while the window is open
            assert r.channels["email"].sent == []
            assert await digests(r.database) == [("open", None)]
            clock.jump(WINDOW_S)
            drained = await run_due(r)
        assert drained.completed == 3  # the digest job, then its two summaries
        assert await digests(r.database) == [("sealed", ids)]
        [(envelope, message)] = r.channels["email"].sent
        assert message.subject == "You were mentioned 5 times"
        assert message.text.splitlines()[:5] == [f"Bob: message {i}" for i in range(5)]
        assert message.html is not None
        assert message.html.count("<li>") == 5
        assert envelope.headers["List-Unsubscribe"].startswith("<https://example.com/")
        [item] = (await notify.list_inbox(r.database, 1)).items
        assert item.title == "You were mentioned 5 times"
        assert item.body.count("Bob: message") == 5
        for event_id in ids:
            assert await r.statuses(event_id) == [
                (1, "inapp", "digested", None),
                (1, "email", "digested", None),
            ]
        [summary] = await summaries(r.database, "email")
        history = await notify.delivery_history(r.database, summary.id)
        assert [h.status for h in history] == ["queued", "sent"]
        assert [e.event[-1] for e in seen] == ["opened", "sealed", "sent", "sent"]
        assert seen[1].measurements == {"events": 5, "deliveries": 2}
        assert seen[1].metadata["digest_key"] == "chat.mention"
        assert {e.metadata["channel"] for e in seen[2:]} == {"inapp", "email"}
        # Run everything left, scheduled or not: nothing more is sent.
        await r.run(with_scheduled=True)
        assert len(r.channels["email"].sent) == 1


async def test_events_after_the_window_start_a_new_digest(
    backend: Backend, clock: MockClock
) -> None:
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        first = await mentions(r, ["a", "b"], clock)
        clock.jump(WINDOW_S)
        await run_due(r)
        later = await mentions(r, ["c"], clock)
        assert await digests(r.database) == [("sealed", first), ("open", None)]
        clock.jump(WINDOW_S)
        await run_due(r)
        assert await digests(r.database) == [("sealed", first), ("sealed", later)]
        texts = [message.text for _, message in r.channels["email"].sent]
        assert [t.splitlines()[0] for t in texts] == ["Bob: a", "Bob: c"]
        assert [m.subject for _, m in r.channels["email"].sent] == [
            "You were mentioned 2 times",
            "You were mentioned 1 time",
        ]


async def test_a_summary_that_fails_after_sealing_covers_exactly_the_sealed_events(
    backend: Backend, clock: MockClock
) -> None:
    email = RecordingChannel("email", transient=1)
    async with setup_digests(backend, email) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        sealed = await mentions(r, [f"m{i}" for i in range(5)], clock)
        clock.jump(WINDOW_S)
        drained = await run_due(r)
        assert (drained.completed, drained.retryable) == (2, 1)  # the email summary failed
        # Events that come after the seal open the next digest: not the failed summary's.
        after = await mentions(r, ["late 1", "late 2"], clock)
        assert await digests(r.database) == [("sealed", sealed), ("open", None)]
        # The digest job run again (a retry by hand, a rescue) makes no second summary.
        digest_job = await r.database.fetch_val("SELECT job_id FROM notify_digests WHERE id = 1")
        await jobs.retry_job(r.database, int(digest_job))
        assert (await r.run()).completed == 1
        clock.jump(30)  # the summary's retry is due
        assert (await run_due(r)).completed == 1
        [(_, message)] = email.sent
        assert message.text.splitlines()[:5] == [f"Bob: m{i}" for i in range(5)]
        assert "late" not in message.text
        [summary] = await summaries(r.database, "email")
        history = await notify.delivery_history(r.database, summary.id)
        assert [h.status for h in history] == ["queued", "failed", "sent"]
        clock.jump(WINDOW_S)
        await run_due(r)
        assert await digests(r.database) == [("sealed", sealed), ("sealed", after)]
        assert [m.text.splitlines()[0] for _, m in email.sent] == ["Bob: m0", "Bob: late 1"]
        assert len(await summaries(r.database, "email")) == 2


async def test_a_seal_that_crashes_before_its_commit_leaves_the_digest_whole(
    backend: Backend, clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        ids = await mentions(r, ["a", "b", "c"], clock)
        real = r.notifier.quiet_until

        async def crash(*args: Any) -> Any:
            raise ConnectionResetError("the node died mid-seal")

        monkeypatch.setattr(r.notifier, "quiet_until", crash)
        clock.jump(WINDOW_S)
        assert (await run_due(r)).retryable == 1
        assert await digests(r.database) == [("open", None)]  # rolled back: still open
        assert int(await r.database.fetch_val("SELECT count(*) FROM notify_events")) == 3
        ids += await mentions(r, ["d"], clock)  # still open: it joins
        monkeypatch.setattr(r.notifier, "quiet_until", real)
        clock.jump(30)
        assert (await run_due(r)).completed == 3
        assert await digests(r.database) == [("sealed", ids)]
        [(_, message)] = r.channels["email"].sent
        assert message.text.splitlines()[:4] == ["Bob: a", "Bob: b", "Bob: c", "Bob: d"]


async def test_a_node_killed_after_the_seal_committed_sends_the_summary_once(
    backend: Backend, clock: MockClock
) -> None:
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        ids = await mentions(r, ["a", "b"], clock)
        clock.jump(WINDOW_S)
        # The state a node killed between the seal's commit and its job's completion
        # leaves (once the lifeline makes the job available again): sealed, summaries
        # queued, and the digest job still to run.
        result = await seal(r.notifier, 1)
        assert result is not None
        assert [d.channel for d in result.queued] == ["inapp", "email"]
        assert await seal(r.notifier, 1) is None
        assert (await run_due(r)).completed == 3
        [(_, message)] = r.channels["email"].sent
        assert message.text.splitlines()[:2] == ["Bob: a", "Bob: b"]
        assert await digests(r.database) == [("sealed", ids)]
        assert len(await summaries(r.database, "inapp")) == 1


class HangingChannel(RecordingChannel):
    """Hangs on its first send: the node running it is killed meanwhile."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.hanging = asyncio.Event()

    async def send(self, envelope: notify.Envelope, message: notify.Rendered) -> notify.Sent:
        if not self.hanging.is_set():
            self.hanging.set()
            await asyncio.Event().wait()
        return await super().send(envelope, message)


async def test_a_node_killed_mid_summary_is_rescued_and_sends_it_once(
    backend: Backend, clock: MockClock
) -> None:
    email = HangingChannel("email")
    async with backend.databases(2) as (first, second):
        registry = jobs.WorkerRegistry()
        notifier = notify.Notifier(first, digest_config(), channels=[email], registry=registry)
        r = Recording(first, notifier, registry, {"email": email})
        await notify.set_address(first, 1, "email", "ada@example.com")
        sealed = await mentions(r, [f"m{i}" for i in range(5)], clock)
        clock.jump(WINDOW_S)
        doomed = jobs.Jobs(
            first, registry=registry, node="doomed", queues={"notify": 5}, migrate=False
        )
        supervisor = await doomed.start()
        await email.hanging.wait()  # sealed, the summary being sent
        # Like SIGKILL: every process at once, so none puts its job back.
        tree = await otp.supervision_tree(supervisor)
        for process in tree.walk():
            if process.pid is not None:
                otp.exit(process.pid, otp.KILL)
        await mentions(r, ["late"], clock)  # after the seal: the next digest
        assert await digests(first) == [("sealed", sealed), ("open", None)]
        rescuers = jobs.WorkerRegistry()
        notify.Notifier(second, digest_config(), channels=[email], registry=rescuers)
        node = jobs.Jobs(
            second,
            registry=rescuers,
            node="rescuer",
            queues={"notify": 5},
            rescue_after_s=30,
            migrate=False,
        )
        rescuer = await node.start()
        try:

            async def summary_sent() -> bool:
                return len(email.sent) == 1

            await eventually(summary_sent, "the summary is sent by the rescuer")
        finally:
            await otp.stop(rescuer, "shutdown")
        [(_, message)] = email.sent
        assert message.text.splitlines()[:5] == [f"Bob: m{i}" for i in range(5)]
        assert "late" not in message.text
        [summary] = await summaries(second, "email")
        assert (summary.status, summary.attempts) == ("sent", 2)
        job = await jobs.get_job(second, summary.job_id or 0)
        assert job is not None
        assert [e["type"] for e in job.errors] == ["NodeLost"]
        assert len(await summaries(second, "inapp")) == 1
        assert await digests(second) == [("sealed", sealed), ("open", None)]


async def test_a_critical_event_is_not_digested(backend: Backend, clock: MockClock) -> None:
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await mentions(r, ["a"], clock)
        result = await r.notifier.send(
            "chat.mention", [1], payload={"sender_name": "Ops", "text": "down"}, critical=True
        )
        assert [d.status for d in result.deliveries] == ["queued", "queued"]
        assert (await r.run()).completed == 2
        [(_, message)] = r.channels["email"].sent
        assert message.text.startswith("down")
        assert await digests(r.database) == [("open", None)]


async def test_a_payload_field_keys_the_digests(backend: Backend, clock: MockClock) -> None:
    async with setup_digests(backend) as r:
        for room, text in [(1, "a"), (2, "b"), (1, "c")]:
            await r.notifier.send(
                "chat.direct_message", [1], payload={"room_id": room, "text": text}
            )
        assert await digests(r.database) == [("open", None), ("open", None)]
        clock.jump(WINDOW_S)
        await run_due(r)
        items = (await notify.list_inbox(r.database, 1)).items
        assert sorted(item.title or "" for item in items) == ["1 new message", "2 new messages"]
        keys = await r.database.fetch("SELECT digest_key FROM notify_digests ORDER BY id")
        assert [k["digest_key"] for k in keys] == ["chat.direct_message:1", "chat.direct_message:2"]


async def test_preferences_apply_to_each_event_before_it_is_gathered(
    backend: Backend, clock: MockClock
) -> None:
    async with setup_digests(backend) as r:
        await notify.set_preference(r.database, 1, "chat.mention", "email", False)
        result = await r.notifier.send("chat.mention", [1], payload={"text": "x"})
        assert [(d.channel, d.status, d.reason) for d in result.deliveries] == [
            ("inapp", "digested", None),
            ("email", "suppressed", "preference"),
        ]
        clock.jump(WINDOW_S)
        await run_due(r)
        assert r.channels["email"].sent == []
        assert len((await notify.list_inbox(r.database, 1)).items) == 1


async def test_concurrent_sends_share_one_open_digest(backend: Backend, clock: MockClock) -> None:
    async with backend.databases(2) as [one, two]:
        config = digest_config()
        notifiers = [
            notify.Notifier(d, config, channels=[RecordingChannel("email")]) for d in (one, two)
        ]
        for _ in range(3):
            await asyncio.gather(
                *(n.send("chat.mention", [1], payload={"text": "x"}) for n in notifiers)
            )
        assert await digests(one) == [("open", None)]
        gathered = await one.fetch_val(
            "SELECT count(*) FROM notify_deliveries WHERE digest_id = 1 AND status = 'digested'"
        )
        assert int(gathered) == 6  # 6 events, in-app only (no email address)


def test_a_digest_is_checked() -> None:
    with pytest.raises(notify.InvalidConfig, match=r"Digest\.window_s"):
        notify.Digest(0)
    with pytest.raises(notify.InvalidConfig, match=r"Digest\.key"):
        notify.Digest(60, key="room id")
    with pytest.raises(notify.InvalidConfig, match=r"Category\.digest"):
        notify.Category({"inapp": True}, digest=60)  # type: ignore[arg-type]


async def test_a_digest_needs_its_summary_templates(backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "news").mkdir()
    for part in ("subject", "text"):
        (tmp_path / "news" / f"inapp.en.{part}").write_text("{{ payload.text }}")
    config = notify.NotifyConfig(
        categories={"news": notify.Category({"inapp": True}, digest=notify.Digest(60))},
        template_directory=tmp_path,
    )
    async with backend.databases() as [database]:
        with pytest.raises(notify.TemplateMissing, match=r"news/digest/inapp\.en\.subject"):
            notify.Notifier(database, config)


@asynccontextmanager
async def unmigrated(backend: Backend) -> AsyncIterator[db.Database]:
    if backend.name == "sqlite":
        database = await db.connect(f"sqlite:///{backend.directory / 'upgrade.db'}")
        try:
            yield database
        finally:
            await database.close()
        return
    async with pg.postgres_schema(1, pg.POSTGRES_URL, command_timeout_s=0) as [database]:
        yield database


async def test_version_2_keeps_the_rows_of_version_1(backend: Backend, clock: MockClock) -> None:
    async with unmigrated(backend) as database:
        await database.migrate(
            {jobs.COMPONENT: jobs.MIGRATIONS, notify.COMPONENT: notify.MIGRATIONS[:1]}
        )
        now = clock.now()
        await database.execute(
            "INSERT INTO notify_events (category, payload, critical, created_at) "
            "VALUES ('chat.mention', '{}', FALSE, $1)",
            now,
        )
        await database.execute(
            "INSERT INTO notify_deliveries (event_id, user_id, channel, status, created_at, "
            "updated_at) VALUES (1, 7, 'inapp', 'delivered', $1, $1)",
            now,
        )
        await database.execute(
            "INSERT INTO notify_delivery_history (delivery_id, status, at) "
            "VALUES (1, 'delivered', $1)",
            now,
        )
        await database.migrate({notify.COMPONENT: notify.MIGRATIONS})
        assert int(await database.fetch_val("SELECT count(*) FROM notify_delivery_history")) == 1
        await database.execute("UPDATE notify_deliveries SET status = 'digested' WHERE id = 1")
        with pytest.raises(db.IntegrityError):
            await database.execute("UPDATE notify_deliveries SET status = 'nope' WHERE id = 1")


async def test_gathered_events_count_once_toward_the_throttle(
    backend: Backend, clock: MockClock
) -> None:
    config = digest_config(throttle=notify.Throttle(window_s=3600, threshold=2))
    async with setup(backend, channels=[RecordingChannel("email")], config=config) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await mentions(r, ["a", "b", "c", "d"], clock)  # all gathered: none throttled
        clock.jump(WINDOW_S)
        await run_due(r)
        await mentions(r, ["e"], clock)  # the summary was one event: still under 2
        await r.notifier.send("chat.mention", [1], payload={"text": "f"}, critical=True)
        result = await r.notifier.send("chat.mention", [1], payload={"text": "g"})
        assert [d.reason for d in result.deliveries] == ["throttle", "throttle"]


async def test_quiet_hours_hold_the_summary_when_it_is_sealed(
    backend: Backend, clock: MockClock
) -> None:
    async with setup_digests(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await mentions(r, ["a", "b"], clock)  # gathered: quiet hours are not asked yet
        clock.jump(WINDOW_S)
        now = clock.now()
        end = now + timedelta(hours=2)
        day = now.strftime("%a").lower()
        await notify.set_user_settings(
            r.database, 1, time_zone="UTC", quiet_hours={day: [f"{now:%H:%M}-{end:%H:%M}"]}
        )
        assert (await run_due(r)).completed == 1  # the seal; the summaries wait
        assert r.channels["email"].sent == []
        held = await summaries(r.database, "email")
        assert [(d.status, d.reason, d.scheduled_at) for d in held] == [
            ("queued", "quiet_hours", end.replace(second=0, microsecond=0))
        ]
        clock.jump(2 * 3600)
        assert (await run_due(r)).completed == 2
        assert len(r.channels["email"].sent) == 1
