"""Subscriptions and the hub that fans notifications out, without a database."""

import asyncio

import pytest

from trunkline.db import Notification, SubscriptionClosed
from trunkline.db.notifications import Hub, Listening, check_channel


class Recorder(Listening):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def listen(self, channel: str) -> None:
        self.calls.append(("listen", channel))

    async def unlisten(self, channel: str) -> None:
        self.calls.append(("unlisten", channel))


async def test_a_channel_is_listened_to_while_it_has_subscribers() -> None:
    driver = Recorder()
    hub = Hub(driver)
    first = await hub.subscribe(("a",))
    second = await hub.subscribe(("a", "b"))
    assert driver.calls == [("listen", "a"), ("listen", "b")]
    assert sorted(hub.channels) == ["a", "b"]
    await first.close()
    await first.close()
    assert driver.calls[2:] == []
    await second.close()
    assert driver.calls[2:] == [("unlisten", "a"), ("unlisten", "b")]
    assert hub.channels == []


async def test_delivery_is_in_order_to_each_subscriber_of_the_channel() -> None:
    hub = Hub()
    both = await hub.subscribe(("a", "b"))
    only_b = await hub.subscribe(("b",))
    hub.publish("a", "1")
    hub.publish("b", "2")
    hub.publish("c", "nobody")
    assert [await both.get(), await both.get()] == [("a", "1"), ("b", "2")]
    assert await only_b.get() == Notification("b", "2")
    assert only_b.get_nowait() is None
    assert len(both) == 0


async def test_a_waiting_reader_wakes_on_delivery_and_on_close() -> None:
    hub = Hub()
    subscription = await hub.subscribe(("a",))
    waiting = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    hub.publish("a", "hello")
    assert await waiting == ("a", "hello")
    hub.publish("a", "kept after close")
    reader = asyncio.create_task(anext(subscription))
    assert await reader == ("a", "kept after close")
    iterating = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)
    await subscription.close()
    with pytest.raises(StopAsyncIteration):
        await iterating
    with pytest.raises(SubscriptionClosed, match="subscription to a is closed"):
        await subscription.get()


async def test_a_cancelled_reader_passes_its_turn_on() -> None:
    hub = Hub()
    subscription = await hub.subscribe(("a",))
    first = asyncio.create_task(subscription.get())
    second = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    hub.publish("a", "one")
    first.cancel()
    assert await second == ("a", "one")


async def test_a_slow_reader_loses_the_oldest_notifications() -> None:
    hub = Hub()
    subscription = await hub.subscribe(("a",))
    subscription._max_pending = 3
    for i in range(5):
        hub.publish("a", str(i))
    assert subscription.dropped == 2
    assert [subscription.get_nowait() for _ in range(3)] == [("a", "2"), ("a", "3"), ("a", "4")]


async def test_close_all_ends_every_subscription() -> None:
    hub = Hub()
    subscriptions = [await hub.subscribe(("a",)), await hub.subscribe(("b",))]
    hub.close_all()
    assert all(subscription.closed for subscription in subscriptions)
    assert hub.channels == []


async def test_a_failed_listen_leaves_nothing_behind() -> None:
    class Refusing(Recorder):
        async def listen(self, channel: str) -> None:
            if channel == "bad":
                raise ConnectionError("no")
            await super().listen(channel)

    driver = Refusing()
    hub = Hub(driver)
    with pytest.raises(ConnectionError):
        await hub.subscribe(("good", "bad"))
    assert hub.channels == []
    assert driver.calls == [("listen", "good"), ("unlisten", "good")]


async def test_a_channel_named_twice_is_one_channel() -> None:
    driver = Recorder()
    hub = Hub(driver)
    subscription = await hub.subscribe(("a", "b", "a"))
    assert subscription.channels == ("a", "b")
    hub.publish("a", "once")
    assert [subscription.get_nowait(), subscription.get_nowait()] == [("a", "once"), None]
    await subscription.close()
    assert hub.channels == []
    assert driver.calls == [("listen", "a"), ("listen", "b"), ("unlisten", "a"), ("unlisten", "b")]


async def test_a_failed_unlisten_does_not_keep_the_other_channels_listened_to() -> None:
    class Failing(Recorder):
        async def unlisten(self, channel: str) -> None:
            await super().unlisten(channel)
            if channel == "a":
                raise ConnectionError("no")

    driver = Failing()
    hub = Hub(driver)
    subscription = await hub.subscribe(("a", "b"))
    with pytest.raises(ConnectionError):
        await subscription.close()
    assert driver.calls[2:] == [("unlisten", "a"), ("unlisten", "b")]
    assert hub.channels == []


@pytest.mark.parametrize(
    ("channel", "error"),
    [(None, TypeError), ("", ValueError), ("x" * 64, ValueError), ("é" * 32, ValueError)],
)
def test_channel_names(channel: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_channel(channel)
    assert check_channel("jobs:mailers.v1") == "jobs:mailers.v1"
