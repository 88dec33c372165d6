"""The PostgreSQL driver's pool, against fake connections: what comes back, what is dropped,
and who gets the place a dropped connection leaves."""

from __future__ import annotations

import asyncio

from trunkline.db.drivers._postgres_pool import Pool


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.in_transaction = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = True

    async def close(self, *, timeout: float | None = None) -> None:
        self.closed = True


class Server:
    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []

    async def connect(self) -> FakeConnection:
        await asyncio.sleep(0.01)
        self.connections.append(FakeConnection(len(self.connections)))
        return self.connections[-1]


async def test_a_connection_given_back_is_taken_again() -> None:
    server = Server()
    pool = Pool(server.connect, "fake", 1, 1.0)
    first = await pool.acquire()
    pool.give_back(first)
    assert await pool.acquire() is first
    await pool.close()


async def test_a_discarded_connection_is_terminated_and_its_place_goes_to_a_waiter() -> None:
    server = Server()
    pool = Pool(server.connect, "fake", 1, 1.0)
    first = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(1)
    assert not waiting.done()  # the pool is full
    pool.discard(first)  # its BEGIN was cancelled: nobody else may have it
    second = await waiting
    assert first.closed
    assert second is not first
    assert not second.closed
    pool.give_back(second)
    assert await pool.acquire() is second  # one place, and it is taken by the new one
    await pool.close()


async def test_a_connection_given_back_in_a_transaction_is_dropped() -> None:
    server = Server()
    pool = Pool(server.connect, "fake", 1, 1.0)
    first = await pool.acquire()
    first.in_transaction = True
    pool.give_back(first)
    assert first.closed
    second = await pool.acquire()
    assert second is not first
    await pool.close()
