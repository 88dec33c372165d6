"""Notifications: ``listen(channel)`` / ``notify(channel, payload)``, so that a producer can
wake up on an insert instead of polling.

On PostgreSQL they are ``LISTEN``/``NOTIFY``, through one dedicated connection per
:class:`~trunkline.db.Database`; on SQLite they are delivered inside the node, to the
subscriptions of the same ``Database``. Either way a notification sent in a transaction is
delivered when it commits, and never if it rolls back.

A :class:`Hub` fans notifications out to the :class:`Subscription`\\ s of one database; the
drivers feed it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import NamedTuple

from .exceptions import SubscriptionClosed

__all__ = ["MAX_PENDING", "Hub", "Notification", "Subscription", "check_channel"]

MAX_PENDING = 10_000
"""How many undelivered notifications a subscription keeps before it drops the oldest."""

_MAX_CHANNEL_BYTES = 63  # PostgreSQL truncates identifiers beyond this; refuse instead


class Notification(NamedTuple):
    """One notification: the channel it was sent on and its text payload."""

    channel: str
    payload: str


class Subscription:
    """Notifications on some channels, in the order they were sent, for one consumer.

    Made by :meth:`~trunkline.db.Database.listen`, which has already started listening when
    it returns. Read with ``await sub.get()`` or ``async for note in sub``; end with
    ``await sub.close()`` or by leaving its ``async with`` block. Iteration ends when the
    subscription or its database is closed.

    Notifications are wake-up calls, not a queue of record: one that arrives while the
    consumer is behind by :data:`MAX_PENDING` pushes out the oldest (counted in
    :attr:`dropped`), and on PostgreSQL those sent while the listening connection was being
    re-established are lost. Read the rows themselves from the database.

    Example::

        async with db.listen("jobs_inserted") as sub:
            async for note in sub:
                await fetch_jobs(queue=note.payload)
    """

    def __init__(self, hub: Hub, channels: tuple[str, ...], max_pending: int = MAX_PENDING):
        self.channels = channels
        self.dropped = 0
        self._hub = hub
        self._pending: deque[Notification] = deque()
        self._max_pending = max_pending
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """How many notifications wait to be read."""
        return len(self._pending)

    async def get(self) -> Notification:
        """The next notification, waiting for one if none is pending.

        Raises:
            SubscriptionClosed: the subscription (or its database) is closed and nothing is
                pending.
        """
        while not self._pending:
            if self._closed:
                raise SubscriptionClosed(f"subscription to {', '.join(self.channels)} is closed")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and self._pending:
                    self._wake()  # woken, then cancelled: pass the turn on
                raise
        return self._pending.popleft()

    def get_nowait(self) -> Notification | None:
        """The next notification if one is pending, else ``None``."""
        return self._pending.popleft() if self._pending else None

    async def close(self) -> None:
        """Stop listening; pending notifications can still be read. Idempotent."""
        if not self._closed:
            await self._hub.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Notification]:
        return self

    async def __anext__(self) -> Notification:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={len(self._pending)}"
        return f"<Subscription {', '.join(self.channels)} {state}>"

    def _deliver(self, notification: Notification) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(notification)
        self._wake()

    def _close(self) -> None:
        self._closed = True
        while self._waiters:
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class Listening:
    """What a hub asks of its driver: start and stop receiving a channel's notifications."""

    async def listen(self, channel: str) -> None:
        """Receive notifications on ``channel`` from now on."""

    async def unlisten(self, channel: str) -> None:
        """Stop receiving notifications on ``channel``."""


class Hub:
    """The subscriptions of one database, by channel; what the drivers deliver to.

    Attributes:
        listening: told when a channel gets its first subscriber and loses its last (the
            driver; by default, nobody).
    """

    def __init__(self, listening: Listening | None = None) -> None:
        self.listening = listening or Listening()
        self._by_channel: dict[str, list[Subscription]] = {}
        # One change at a time: a second subscriber to a channel must not return before the
        # first one's LISTEN has reached the server.
        self._lock = asyncio.Lock()

    def publish(self, channel: str, payload: str) -> None:
        """Deliver a notification to every subscription to ``channel``, now."""
        subscriptions = self._by_channel.get(channel)
        if subscriptions:
            notification = Notification(channel, payload)
            for subscription in subscriptions:
                subscription._deliver(notification)

    def publish_all(self, notifications: Iterable[tuple[str, str]]) -> None:
        for channel, payload in notifications:
            self.publish(channel, payload)

    async def subscribe(self, channels: tuple[str, ...]) -> Subscription:
        """A subscription to ``channels``, listening once this returns. A channel named
        twice is one channel: each notification on it is delivered once."""
        subscription = Subscription(self, tuple(dict.fromkeys(channels)))
        channels = subscription.channels
        async with self._lock:
            added: list[str] = []
            try:
                for channel in channels:
                    if channel not in self._by_channel:
                        await self.listening.listen(channel)
                        self._by_channel[channel] = []
                        added.append(channel)
                    self._by_channel[channel].append(subscription)
            except BaseException:
                self._remove(subscription)
                for channel in added:
                    if channel not in self._by_channel:
                        await _quietly(self.listening.unlisten(channel))
                raise
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        subscription._close()
        async with self._lock:
            failure: Exception | None = None
            for channel in self._remove(subscription):
                try:
                    await self.listening.unlisten(channel)
                except Exception as error:  # the other channels are unlistened all the same
                    failure = failure or error
            if failure is not None:
                raise failure

    def close_all(self) -> None:
        """Close every subscription (the database is closing); no unlistening."""
        for subscriptions in self._by_channel.values():
            for subscription in subscriptions:
                subscription._close()
        self._by_channel.clear()

    @property
    def channels(self) -> list[str]:
        """The channels with at least one subscription."""
        return list(self._by_channel)

    def _remove(self, subscription: Subscription) -> list[str]:
        emptied = []
        for channel in subscription.channels:
            subscriptions = self._by_channel.get(channel)
            if subscriptions is not None and subscription in subscriptions:
                subscriptions.remove(subscription)
                if not subscriptions:
                    del self._by_channel[channel]
                    emptied.append(channel)
        return emptied


def check_channel(channel: object) -> str:
    """``channel`` if it is a usable channel name.

    Raises:
        TypeError: not a string.
        ValueError: empty, or longer than 63 bytes (PostgreSQL's limit for names).
    """
    if not isinstance(channel, str):
        raise TypeError(f"a channel is a string, got {channel!r}")
    if not channel or len(channel.encode()) > _MAX_CHANNEL_BYTES:
        raise ValueError(f"a channel name has 1 to 63 bytes, got {channel!r}")
    return channel


async def _quietly(step: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):  # already failing: the first error is the one to raise
        await step
