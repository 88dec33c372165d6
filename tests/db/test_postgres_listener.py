"""The PostgreSQL LISTEN connection, against fake connections on a mock clock: re-established
when it drops or stops answering, with every channel listened to again, and driver errors
turned into the layer's.

The real server's side of the same (a terminated backend, a connection gone silent) is in
``test_postgres.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from trunkline import db
from trunkline.db.drivers._postgres_listener import Listener
from trunkline.db.notifications import Hub
from trunkline.otp import MockClock
from trunkline.otp.testing import wait_until

CHECK_INTERVAL_S = 10.0
ROUND_TRIP_S = 0.01


class FakeConnection:
    """What the listener uses of an asyncpg connection; the test plays the server."""

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.closed = False
        self.checks = 0
        self.busy = False
        self.silent = False  # the network dropped it without a word: nothing answers
        self.listen_error: Exception | None = None
        self.check_error: Exception | None = None
        self._callbacks: dict[str, Callable[..., None]] = {}
        self._on_terminated: list[Callable[[Any], None]] = []

    async def add_listener(self, channel: str, callback: Callable[..., None]) -> None:
        await self._round_trip()
        if self.listen_error is not None:
            raise self.listen_error
        self.channels.add(channel)
        self._callbacks[channel] = callback

    async def remove_listener(self, channel: str, callback: Callable[..., None]) -> None:
        await self._round_trip()
        self.channels.discard(channel)
        self._callbacks.pop(channel, None)

    async def fetchval(self, sql: str) -> Any:
        assert sql == "SELECT 1"
        self.checks += 1
        await self._round_trip()
        if self.check_error is not None:
            raise self.check_error
        return 1

    def add_termination_listener(self, callback: Callable[[Any], None]) -> None:
        self._on_terminated.append(callback)

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        if not self.closed:
            self.closed = True
            for callback in self._on_terminated:  # as asyncpg: on the loop's next turn
                asyncio.get_running_loop().call_soon(callback, self)

    async def close(self, *, timeout: float | None = None) -> None:
        self.closed = True

    def drop(self) -> None:
        """The server went away and asyncpg noticed."""
        self.terminate()

    def notify(self, channel: str, payload: str) -> None:
        if channel in self._callbacks:
            self._callbacks[channel](self, 1234, channel, payload)

    async def _round_trip(self) -> None:
        if self.closed:
            raise asyncpg.InterfaceError("connection is closed")
        if self.busy:
            raise asyncpg.InterfaceError("another operation is in progress")
        self.busy = True
        try:
            if self.silent:
                await asyncio.get_running_loop().create_future()  # never answered
            await asyncio.sleep(ROUND_TRIP_S)
        finally:
            self.busy = False


class Server:
    """Hands out fake connections, or refuses them."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.refusing: Exception | None = None
        self.prepare: Callable[[FakeConnection], None] = lambda connection: None

    async def connect(self) -> FakeConnection:
        await asyncio.sleep(ROUND_TRIP_S)
        if self.refusing is not None:
            raise self.refusing
        connection = FakeConnection()
        self.prepare(connection)
        self.connections.append(connection)
        return connection

    @property
    def last(self) -> FakeConnection:
        return self.connections[-1]

    def open_connections(self) -> list[FakeConnection]:
        return [connection for connection in self.connections if not connection.closed]


def listening(server: Server) -> tuple[Hub, Listener]:
    hub = Hub()
    listener = Listener(server.connect, hub, "fake server", CHECK_INTERVAL_S)
    hub.listening = listener
    return hub, listener


async def test_every_channel_is_listened_to_again_when_the_connection_comes_back() -> None:
    server = Server()
    hub, listener = listening(server)
    subscription = await hub.subscribe(("a", "b"))
    assert server.last.channels == {"a", "b"}
    server.last.drop()
    await wait_until(lambda: len(server.connections) == 2 and server.last.channels == {"a", "b"})
    server.last.notify("a", "after")
    assert subscription.get_nowait() == ("a", "after")
    await listener.close()


async def test_channels_changed_while_the_connection_comes_back_are_caught_up_with() -> None:
    server = Server()
    hub, listener = listening(server)
    kept = await hub.subscribe(("kept",))
    dropped = await hub.subscribe(("dropped",))
    server.last.drop()
    # Reconnected, and the first LISTEN is on its way, when the channels change.
    await wait_until(lambda: len(server.connections) == 2)
    added = await hub.subscribe(("added",))  # returns at once: listened to once back
    await dropped.close()
    await wait_until(lambda: server.last.channels == {"kept", "added"}, timeout_s=1)
    await asyncio.sleep(1)
    assert server.last.channels == {"kept", "added"}
    server.last.notify("added", "x")
    assert added.get_nowait() == ("added", "x")
    assert kept.get_nowait() is None
    await listener.close()


async def test_a_connection_that_stops_answering_is_replaced(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    hub, listener = listening(server)
    subscription = await hub.subscribe(("a",))
    first = server.last
    first.silent = True
    went_silent = clock.monotonic()
    await wait_until(lambda: len(server.open_connections()) == 1 and first.closed, timeout_s=60)
    await wait_until(lambda: server.last.channels == {"a"})
    # Found out by the first check after it went silent, once that check's time was up.
    assert CHECK_INTERVAL_S < clock.monotonic() - went_silent <= 2 * CHECK_INTERVAL_S + 1
    assert "looks dead (no answer to SELECT 1 within 10s)" in caplog.text
    server.last.notify("a", "after")
    assert subscription.get_nowait() == ("a", "after")
    await listener.close()


async def test_a_connection_whose_check_fails_is_replaced(clock: MockClock) -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    first = server.last
    first.check_error = asyncpg.InterfaceError("cannot perform operation: broken pipe")
    started = clock.monotonic()
    await wait_until(lambda: first.closed and server.last.channels == {"a"}, timeout_s=60)
    assert clock.monotonic() - started <= CHECK_INTERVAL_S + 1
    await listener.close()


async def test_a_live_connection_passes_its_checks_and_is_kept(clock: MockClock) -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    await asyncio.sleep(10 * CHECK_INTERVAL_S + 1)
    assert len(server.connections) == 1
    assert server.last.checks == 10
    await listener.close()


async def test_a_failed_attempt_to_come_back_leaves_no_connection_open() -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    attempts = 0

    def fail_once(connection: FakeConnection) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            connection.listen_error = asyncpg.ConnectionDoesNotExistError("closed mid-way")

    server.prepare = fail_once
    server.last.drop()
    await wait_until(lambda: len(server.connections) == 3 and server.last.channels == {"a"})
    assert server.open_connections() == [server.last]
    await listener.close()
    assert server.open_connections() == []


async def test_closing_while_the_connection_comes_back_stops_trying() -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    server.refusing = OSError("connection refused")
    server.last.drop()
    await asyncio.sleep(5)  # retrying, with backoff
    await listener.close()
    server.refusing = None
    await asyncio.sleep(60)
    assert server.open_connections() == []


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (asyncpg.ConnectionDoesNotExistError("closed in the middle"), db.ConnectionLost),
        (asyncpg.InsufficientPrivilegeError("permission denied"), db.QueryError),
    ],
)
async def test_a_driver_error_while_listening_is_a_database_error(
    error: Exception, raised: type[db.DatabaseError]
) -> None:
    server = Server()
    server.prepare = lambda connection: setattr(connection, "listen_error", error)
    hub, listener = listening(server)
    with pytest.raises(raised) as caught:
        await hub.subscribe(("a",))
    assert caught.value.__cause__ is error
    assert hub.channels == []
    server.prepare = lambda connection: None
    server.last.drop()
    await wait_until(lambda: len(server.connections) == 2)
    await asyncio.sleep(1)
    assert server.last.channels == set()  # the failed channel is not listened to later
    await listener.close()


async def test_the_first_connection_failing_is_cannot_connect() -> None:
    server = Server()
    server.refusing = OSError("connection refused")
    hub, listener = listening(server)
    with pytest.raises(db.CannotConnect, match=r"fake server.*connection refused"):
        await hub.subscribe(("a",))
    server.refusing = None
    subscription = await hub.subscribe(("a",))
    server.last.notify("a", "x")
    assert subscription.get_nowait() == ("a", "x")
    await listener.close()


async def test_unlistening_on_a_dropped_connection_is_no_error() -> None:
    server = Server()
    hub, listener = listening(server)
    subscription = await hub.subscribe(("a",))
    server.last.closed = True  # dropped; asyncpg has not said so yet
    await subscription.close()
    assert hub.channels == []
    await listener.close()


async def test_listening_on_a_connection_found_dropped_waits_for_the_next_one() -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    server.last.closed = True  # dropped; asyncpg has not said so yet
    subscription = await hub.subscribe(("b",))
    await wait_until(lambda: len(server.connections) == 2 and server.last.channels == {"a", "b"})
    server.last.notify("b", "x")
    assert subscription.get_nowait() == ("b", "x")
    await listener.close()


async def test_the_check_waits_its_turn_behind_a_listen(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncpg refuses a second operation while one is in progress on a connection.
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    caplog.set_level(logging.WARNING, logger="trunkline.db")
    for i in range(int(3 * CHECK_INTERVAL_S / ROUND_TRIP_S)):
        await hub.subscribe((f"c{i}",))
    assert len(server.connections) == 1
    assert server.last.checks >= 2
    assert caplog.text == ""
    await listener.close()


async def test_a_listen_unanswered_in_time_is_connection_lost_and_the_connection_replaced(
    clock: MockClock,
) -> None:
    server = Server()
    hub, listener = listening(server)
    kept = await hub.subscribe(("kept",))
    first = server.last
    first.silent = True
    started = clock.monotonic()
    with pytest.raises(db.ConnectionLost, match="no answer within 10s"):
        await hub.subscribe(("new",))
    assert clock.monotonic() - started == pytest.approx(CHECK_INTERVAL_S, abs=0.1)
    await wait_until(lambda: first.closed and server.last.channels == {"kept"})
    server.last.notify("kept", "x")
    assert kept.get_nowait() == ("kept", "x")
    await listener.close()


async def test_an_unlisten_unanswered_in_time_is_no_error(clock: MockClock) -> None:
    server = Server()
    hub, listener = listening(server)
    kept = await hub.subscribe(("kept",))
    dropped = await hub.subscribe(("dropped",))
    first = server.last
    first.silent = True
    await dropped.close()  # the connection is given up, and the LISTEN goes with it
    await wait_until(lambda: first.closed and server.last.channels == {"kept"})
    server.last.notify("kept", "x")
    assert kept.get_nowait() == ("kept", "x")
    await listener.close()


async def test_a_new_connection_that_does_not_answer_is_given_up_and_another_tried(
    clock: MockClock,
) -> None:
    server = Server()
    hub, listener = listening(server)
    await hub.subscribe(("a",))
    server.prepare = lambda connection: setattr(connection, "silent", True)
    server.last.drop()
    await wait_until(lambda: len(server.connections) == 2)
    server.prepare = lambda connection: None
    await wait_until(lambda: server.last.channels == {"a"}, timeout_s=60)
    assert len(server.connections) == 3
    assert server.open_connections() == [server.last]
    await listener.close()
