"""Presence in the chat server: per room (members with the room open, in the join reply and as
batched, net diffs) and per user (online on any device, last seen when the last one closed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from chat_backends import Backend
from connection_helpers import CHEAP, connected, pushed
from test_room_server import running

from trunkline import chat, otp
from trunkline.chat.connection import handle_frame

INTERVAL_S = 1.0


async def join(pid: otp.Pid, room_id: int) -> None:
    await handle_frame(pid, json.dumps({"id": "j", "op": "join", "room": room_id}))


def replies(transport: Any) -> list[dict[str, Any]]:
    return [frame for frame in map(json.loads, transport.frames) if "id" in frame]


async def test_the_join_reply_and_diffs_say_who_has_the_room_open(backend: Backend) -> None:
    async with (
        backend.database() as database,
        running(database, presence_interval_s=INTERVAL_S) as tree,
    ):
        ada, ada_pid, ada_socket = await connected(tree, "ada")
        bob, bob_pid, _ = await connected(tree, "bob")
        _, bob_phone, _ = await connected(tree, "bob", new=False)
        room = await chat.create_room(database, ada, "lobby")
        await chat.join(database, room.id, bob)
        await join(ada_pid, room.id)
        assert replies(ada_socket)[-1]["presence"] == {str(ada): {"devices": 1}}
        await join(bob_pid, room.id)
        await join(bob_phone, room.id)
        await asyncio.sleep(INTERVAL_S * 1.5)
        [diff] = pushed(ada_socket, "presence")
        assert diff["room"] == room.id
        # ada's own arrival too: it happened within the same interval.
        assert diff["joins"] == {str(ada): {"devices": 1}, str(bob): {"devices": 2}}
        assert diff["leaves"] == {}
        assert "server_time" in diff

        # One of bob's devices leaves the room, the other closes: bob is gone from the room.
        await handle_frame(bob_pid, json.dumps({"id": "l", "op": "leave", "room": room.id}))
        await otp.stop(bob_phone)
        await asyncio.sleep(INTERVAL_S * 1.5)
        left = pushed(ada_socket, "presence")[1]
        assert left["joins"] == {}
        assert list(left["leaves"]) == [str(bob)]
        assert left["leaves"][str(bob)]["last_seen_at"] == left["server_time"]


async def test_a_crowd_joining_is_one_diff_and_a_quick_reconnect_is_none(
    backend: Backend,
) -> None:
    async with (
        backend.database() as database,
        running(database, presence_interval_s=INTERVAL_S) as tree,
    ):
        ada, ada_pid, ada_socket = await connected(tree, "ada")
        room = await chat.create_room(database, ada, "lobby")
        await join(ada_pid, room.id)
        await asyncio.sleep(INTERVAL_S * 1.5)  # ada's own arrival is a diff: done with it
        ada_socket.frames.clear()

        crowd = []
        for n in range(30):
            await chat.register(database, f"user{n}", "correct horse", "x", passwords=CHEAP)
            login = await chat.login(database, f"user{n}", "correct horse", passwords=CHEAP)
            user, pid, _ = await connected(tree, f"user{n}", new=False, token=login.token)
            await chat.join(database, room.id, user)
            await join(pid, room.id)
            crowd.append((login.token, pid))
        await asyncio.sleep(INTERVAL_S * 1.5)
        [diff] = pushed(ada_socket, "presence")
        assert len(diff["joins"]) == len(crowd)

        # Everyone drops and comes back (same device) within one interval: no diff at all.
        ada_socket.frames.clear()
        for n, (token, pid) in enumerate(crowd):
            await otp.stop(pid)
            _, again, _ = await connected(tree, f"user{n}", new=False, token=token)
            await join(again, room.id)
        await asyncio.sleep(INTERVAL_S * 3)
        assert pushed(ada_socket, "presence") == []


async def test_a_user_is_online_on_any_device_and_last_seen_when_the_last_closes(
    backend: Backend, clock: otp.MockClock
) -> None:
    # Idle connections are not closed here: the clock jumps past the default idle timeout.
    async with backend.database() as database, running(database, idle_timeout_s=3600) as tree:
        ada, laptop, _ = await connected(tree, "ada")
        _, phone, _ = await connected(tree, "ada", new=False)
        never, *_ = await connected(tree, "bob")
        [presence] = (await chat.users_presence(tree, database, [ada])).values()
        assert (presence.online, presence.devices, presence.last_seen_at) == (True, 2, None)
        assert tree.is_connected(ada)

        await otp.stop(laptop)
        assert (await chat.users_presence(tree, database, [ada]))[ada].devices == 1
        clock.jump(600)
        await otp.stop(phone)
        closed_at = clock.now()
        assert not tree.is_connected(ada)
        found = await chat.users_presence(tree, database, [ada, never, 10_000])
        assert found[ada].online is False
        assert found[ada].last_seen_at == closed_at
        assert found[never].online is True
        assert (found[10_000].online, found[10_000].last_seen_at) == (False, None)


async def test_a_subscriber_of_the_users_topic_gets_its_diffs_and_rooms_still_get_theirs(
    backend: Backend,
) -> None:
    async with (
        backend.database() as database,
        running(database, presence_interval_s=INTERVAL_S) as tree,
    ):
        tree.pubsub.subscribe(chat.USERS_TOPIC)  # anyone may follow who is online
        presence_pid = tree.presence.pid
        ada, ada_pid, ada_socket = await connected(tree, "ada")
        room = await chat.create_room(database, ada, "lobby")
        await join(ada_pid, room.id)
        await asyncio.sleep(INTERVAL_S * 1.5)
        ada_socket.frames.clear()
        bob, bob_pid, _ = await connected(tree, "bob")  # the users topic changes first
        await chat.join(database, room.id, bob)
        await join(bob_pid, room.id)
        await asyncio.sleep(INTERVAL_S * 1.5)
        assert [list(d["joins"]) for d in pushed(ada_socket, "presence")] == [[str(bob)]]
        diffs = []
        while True:
            try:
                diffs.append(await otp.receive(timeout=0))
            except TimeoutError:
                break
        assert [type(d) for d in diffs] == [otp.PresenceDiff, otp.PresenceDiff]
        assert list(diffs[-1].joins) == [bob]
        assert tree.presence.pid is presence_pid  # it never crashed
