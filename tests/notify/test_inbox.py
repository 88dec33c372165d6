"""The in-app inbox: items stored by the channel, listed, counted, read, archived."""

from __future__ import annotations

import pytest
from notify_helpers import Backend, mock_clock, setup

from trunkline import notify
from trunkline.otp import MockClock


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


async def fill(r: object, count: int, user: int = 1) -> list[notify.EventResult]:
    results = []
    for n in range(count):
        results.append(
            await r.notifier.send(  # type: ignore[attr-defined]
                "chat.direct_message", [user], payload={"text": f"m{n}", "sender_name": "Bob"}
            )
        )
    await r.run()  # type: ignore[attr-defined]
    return results


async def test_the_inbox_channel_stores_items(backend: Backend) -> None:
    async with setup(backend) as r:
        [result] = await fill(r, 1)
        page = await notify.list_inbox(r.database, 1)
        [item] = page.items
        assert (item.title, item.body) == ("New message from Bob", "m0")
        assert item.delivery_id == result.deliveries[0].delivery_id
        assert item.data["payload"] == {"text": "m0", "sender_name": "Bob"}
        assert item.data["event_id"] == result.event_id
        assert (item.read_at, item.archived_at) == (None, None)
        stored = await notify.get_delivery(r.database, item.delivery_id or 0)
        assert stored is not None
        assert (stored.status, stored.provider_id) == ("delivered", str(item.id))
        assert page.next_cursor is None


async def test_pages_read_unread_and_archive(backend: Backend, clock: MockClock) -> None:
    async with setup(backend) as r:
        await fill(r, 5)
        await fill(r, 1, user=2)
        first = await notify.list_inbox(r.database, 1, limit=2)
        assert [i.body for i in first.items] == ["m4", "m3"]
        second = await notify.list_inbox(r.database, 1, limit=2, cursor=first.next_cursor)
        assert [i.body for i in second.items] == ["m2", "m1"]
        third = await notify.list_inbox(r.database, 1, limit=2, cursor=second.next_cursor)
        assert ([i.body for i in third.items], third.next_cursor) == (["m0"], None)
        assert await notify.unread_count(r.database, 1) == 5

        m4 = first.items[0]
        clock.jump(10)
        assert await notify.mark_read(r.database, 1, m4.id)
        assert not await notify.mark_read(r.database, 1, m4.id)  # already read
        assert not await notify.mark_read(r.database, 2, m4.id)  # not user 2's
        assert await notify.unread_count(r.database, 1) == 4
        history = await notify.delivery_history(r.database, m4.delivery_id or 0)
        assert [h.status for h in history] == ["queued", "delivered", "read"]
        assert history[-1].at == clock.now()
        read = await notify.list_inbox(r.database, 1, filter="read")
        assert [i.body for i in read.items] == ["m4"]

        assert await notify.archive(r.database, 1, second.items[0].id)
        archived = await notify.list_inbox(r.database, 1, filter="archived")
        assert [i.body for i in archived.items] == ["m2"]
        assert await notify.unread_count(r.database, 1) == 3
        assert await notify.mark_all_read(r.database, 1) == 3
        assert await notify.unread_count(r.database, 1) == 0
        assert await notify.unread_count(r.database, 2) == 1
        unread = await notify.list_inbox(r.database, 1, filter="unread")
        assert unread.items == []
        every = await notify.list_inbox(r.database, 1)
        assert [i.body for i in every.items] == ["m4", "m3", "m1", "m0"]
        with pytest.raises(notify.InvalidNotification, match="filter"):
            await notify.list_inbox(r.database, 1, filter="new")  # type: ignore[arg-type]


async def test_a_delivery_stored_twice_is_one_item(backend: Backend) -> None:
    async with setup(backend) as r:
        [result] = await fill(r, 1)
        inbox = r.notifier.channels["inapp"]
        delivery = result.deliveries[0]
        envelope = notify.Envelope(
            delivery.delivery_id, result.event_id, 1, "chat.direct_message", "1"
        )
        sent = await inbox.send(envelope, notify.Rendered("again", "again"))
        page = await notify.list_inbox(r.database, 1)
        assert [i.body for i in page.items] == ["m0"]
        assert sent.provider_id == str(page.items[0].id)
