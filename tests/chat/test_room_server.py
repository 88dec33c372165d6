"""Room processes on both backends: sends numbered without gaps and acknowledged only once
stored, retries stored once, a room killed mid-burst losing nothing acknowledged, idle stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, refuse_bodies

from trunkline import chat, db, otp
from trunkline.chat import room_server
from trunkline.chat.room_server import RoomPush, RoomUnavailable
from trunkline.chat.tree import ChatLimits, ChatTree, room_topic


@asynccontextmanager
async def running(database: db.Database, **limits: Any) -> AsyncIterator[ChatTree]:
    tree = ChatTree(database, limits=ChatLimits(**limits))
    pid = await tree.start_link()
    try:
        yield tree
    finally:
        otp.unlink(pid)
        await otp.stop(pid, otp.SHUTDOWN)


async def a_room(database: db.Database, members: int = 2) -> tuple[int, list[int]]:
    users = await add_users(database, *(f"user{i}" for i in range(members)))
    room = await chat.create_room(database, users[0], "lobby")
    for user in users[1:]:
        await chat.join(database, room.id, user)
    return room.id, users


async def test_sends_are_numbered_without_gaps_and_acked_once_stored(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, (ada, bob) = await a_room(database)
        tree.pubsub.subscribe(room_topic(room_id))
        for i in range(1, 11):
            message = await room_server.send(tree, room_id, ada if i % 2 else bob, f"m{i}", f"c{i}")
            assert message.seq == i
            assert not message.duplicate
            stored = await chat.get_message(database, room_id, i)  # stored before the ack
            assert stored.body == f"m{i}"
        pushes = [await otp.receive(timeout=1) for _ in range(10)]
        assert [push.seq for push in pushes] == list(range(1, 11))
        frame = json.loads(pushes[3].frame)
        assert frame["type"] == "message"
        assert frame["room"] == room_id
        assert frame["seq"] == 4
        assert frame["message"]["body"] == "m4"
        assert frame["message"]["sender"] == bob
        assert "server_time" in frame
        assert (await room_server.room_info(tree, room_id))["last_seq"] == 10


async def test_the_frame_is_encoded_once_for_every_subscriber(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, (ada, _) = await a_room(database)
        got: list[RoomPush] = []

        async def listener(ready: asyncio.Event) -> None:
            tree.pubsub.subscribe(room_topic(room_id))
            ready.set()
            got.append(await otp.receive(timeout=5))

        events = [asyncio.Event() for _ in range(3)]
        tasks = [asyncio.create_task(listener(event)) for event in events]
        for event in events:
            await event.wait()
        await room_server.send(tree, room_id, ada, "hello", "c1")
        await asyncio.gather(*tasks)
        assert len(got) == 3
        assert got[0].frame is got[1].frame is got[2].frame


async def test_a_retried_send_is_stored_and_broadcast_once(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, (ada, _) = await a_room(database)
        tree.pubsub.subscribe(room_topic(room_id))
        first = await room_server.send(tree, room_id, ada, "hi", "same")
        again = await room_server.send(tree, room_id, ada, "hi (retry)", "same")
        assert again.duplicate
        assert (again.seq, again.id, again.body) == (first.seq, first.id, "hi")
        nxt = await room_server.send(tree, room_id, ada, "next", "other")
        assert nxt.seq == 2
        assert [(await otp.receive(timeout=1)).seq for _ in range(2)] == [1, 2]
        assert len(await chat.history(database, room_id)) == 2


async def test_refusals_come_back_as_the_services_errors(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, (ada, bob) = await a_room(database)
        [eve] = await add_users(database, "eve")
        with pytest.raises(chat.NotMember):
            await room_server.send(tree, room_id, eve, "hi", "c1")
        await chat.mute(database, room_id, ada, bob)
        with pytest.raises(chat.Muted):
            await room_server.send(tree, room_id, bob, "hi", "c2")
        with pytest.raises(chat.InvalidInput):
            await room_server.send(tree, room_id, ada, "   ", "c3")
        sent = await room_server.send(tree, room_id, ada, "fine", "c4")
        assert sent.seq == 1  # the room process lives on after refusals
        edited = await room_server.edit(tree, room_id, ada, 1, "finer")
        assert (edited.seq, edited.version, edited.body) == (1, 2, "finer")
        await chat.unmute(database, room_id, ada, bob)
        with pytest.raises(chat.Forbidden):
            await room_server.edit(tree, room_id, bob, 1, "mine now")
        deleted = await room_server.delete(tree, room_id, ada, 1)
        assert deleted.deleted
        assert deleted.version == 3


async def test_a_burst_in_one_room_is_stored_together_and_broadcast_in_order(
    backend: Backend,
) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, users = await a_room(database, members=5)
        tree.pubsub.subscribe(room_topic(room_id))

        async def sender(user: int) -> list[int]:
            sends = [room_server.send(tree, room_id, user, f"m{i}", f"c{i}") for i in range(5)]
            return [message.seq for message in await asyncio.gather(*sends)]

        with otp.telemetry.capture([("trunkline", "db", "query", "stop")]) as seen:
            acked = await asyncio.gather(*(sender(user) for user in users))
        assert sorted(seq for seqs in acked for seq in seqs) == list(range(1, 26))
        pushes = [await otp.receive(timeout=1) for _ in range(25)]
        assert [push.seq for push in pushes] == list(range(1, 26))
        # The room took the next send while the last was being stored: every send went in a
        # batch (none the careful way), and on SQLite several shared one.
        statements = [
            event.metadata["statement"]
            for event in seen
            if event.metadata["statement"].startswith("chat.messages.")
        ]
        assert set(statements) == {"chat.messages.append_batch"}
        if backend.name == "sqlite":
            assert len(statements) < 25
        else:
            assert len(statements) == 25  # one message per room per statement


async def test_a_send_the_database_refuses_is_unavailable_and_the_room_goes_on(
    backend: Backend,
) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, (ada, _) = await a_room(database)
        pid = await room_server.room(tree, room_id)
        await refuse_bodies(database, "refused")
        with pytest.raises(RoomUnavailable, match="could not be stored"):
            await room_server.send(tree, room_id, ada, "refused", "c1")
        assert (await room_server.send(tree, room_id, ada, "fine", "c2")).seq == 1
        assert tree.rooms.whereis_name(room_id) is pid


async def test_a_room_killed_mid_burst_loses_nothing_acknowledged(backend: Backend) -> None:
    async with backend.database() as database, running(database, room_idle_s=3600) as tree:
        room_id, users = await a_room(database, members=4)
        acked: dict[str, int] = {}
        retries = 0
        per_sender = 25
        progress = asyncio.Event()

        async def sender(user: int) -> None:
            nonlocal retries
            for i in range(per_sender):
                client_msg_id = f"{user}-{i}"
                while True:
                    try:
                        message = await room_server.send(
                            tree, room_id, user, f"{user} says {i}", client_msg_id
                        )
                    except RoomUnavailable:
                        retries += 1
                        continue
                    acked[client_msg_id] = message.seq
                    progress.set()
                    break

        async def killer() -> None:
            pids = set()
            for threshold in (10, 40, 70):
                while len(acked) < threshold:
                    progress.clear()
                    await progress.wait()
                pid = tree.rooms.whereis_name(room_id)
                assert pid is not None
                pids.add(pid)
                otp.exit(pid, otp.KILL)
            assert len(pids) == 3  # each kill hit a fresh process

        await asyncio.gather(*(sender(user) for user in users), killer())

        assert len(acked) == 4 * per_sender
        stored = await chat.history(database, room_id, after=0, limit=200)
        assert [message.seq for message in stored] == list(range(1, 4 * per_sender + 1))
        by_client_id = {message.client_msg_id: message.seq for message in stored}
        assert by_client_id == acked  # every acknowledged message, exactly once
        assert retries >= 1


async def test_an_idle_room_stops_and_the_next_one_restores_from_the_database(
    backend: Backend, clock: otp.MockClock
) -> None:
    async with backend.database() as database, running(database, room_idle_s=30) as tree:
        room_id, (ada, _) = await a_room(database)
        await room_server.send(tree, room_id, ada, "one", "c1")
        first = tree.rooms.whereis_name(room_id)
        assert first is not None

        # A subscriber keeps it alive past the idle time.
        tree.pubsub.subscribe(room_topic(room_id))
        await asyncio.sleep(100)
        assert otp.is_alive(first)

        tree.pubsub.unsubscribe(room_topic(room_id))
        ref = otp.monitor(first)
        started = clock.monotonic()
        down = await otp.receive(match=lambda m: isinstance(m, otp.Down) and m.ref == ref)
        assert down.reason == otp.NORMAL
        assert clock.monotonic() - started <= 31
        assert tree.rooms.whereis_name(room_id) is None

        info = await room_server.room_info(tree, room_id)  # a new process, from the database
        assert info["last_seq"] == 1
        assert tree.rooms.whereis_name(room_id) not in (None, first)
        assert (await room_server.send(tree, room_id, ada, "two", "c2")).seq == 2


async def test_concurrent_callers_share_one_room_process(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        room_id, _ = await a_room(database)
        pids = await asyncio.gather(*(room_server.room(tree, room_id) for _ in range(20)))
        assert len(set(pids)) == 1
        assert (await otp.count_children(tree.room_supervisor)).active == 1  # type: ignore[arg-type]


async def test_a_room_too_slow_to_answer_is_unavailable_and_not_asked_again(
    backend: Backend, clock: otp.MockClock
) -> None:
    async with backend.database() as database, running(database, request_timeout_s=3.0) as tree:
        room_id, (ada, _) = await a_room(database)
        asked: list[Any] = []

        async def stuck() -> None:
            tree.rooms.register(room_id)  # holds the room's name and never replies
            while True:
                asked.append(await otp.receive())

        stuck_pid = otp.spawn(stuck)
        await asyncio.sleep(0)
        started = clock.monotonic()
        with pytest.raises(RoomUnavailable) as caught:
            await room_server.send(tree, room_id, ada, "hi", "c1")
        assert caught.value.reason == "timeout"
        assert "did not reply in time" in str(caught.value)
        assert clock.monotonic() - started == pytest.approx(3.0, abs=0.1)
        assert len(asked) == 1
        otp.exit(stuck_pid, otp.KILL)
