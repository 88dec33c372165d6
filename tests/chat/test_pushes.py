"""Room pushes written by the broadcast straight to joined connections (lanes): held during a
replay and written after it without duplicates, removed members cut off at once, and only
their own connection processes woken."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from chat_backends import Backend
from connection_helpers import connected, pushed
from test_room_server import running

from trunkline import chat, otp
from trunkline.chat import connection as connection_module
from trunkline.chat import room_server
from trunkline.chat.connection import MemoryTransport, handle_frame
from trunkline.chat.pushes import Lane, MemberRemoved, RoomPush, UserSockets, dispatch
from trunkline.chat.tree import ChatTree, room_topic


def push(seq: int, kind: str = "message") -> RoomPush:
    return RoomPush(7, kind, seq, f"frame-{kind}-{seq}")


def test_a_lane_writes_messages_once_in_seq_order_and_other_pushes_as_they_come() -> None:
    transport = MemoryTransport()
    lane = Lane(transport, user_id=1, last_seq=2)
    for p in (push(1), push(3), push(3), push(0, "typing"), push(2, "edit"), push(4)):
        lane.push(p)
    assert transport.frames == [
        "frame-message-3",
        "frame-typing-0",
        "frame-edit-2",
        "frame-message-4",
    ]


def test_a_holding_lane_writes_after_the_replay_only_what_the_replay_did_not_send() -> None:
    transport = MemoryTransport()
    lane = Lane(transport, user_id=1, last_seq=0, holding=True)
    for seq in (4, 5, 6):
        lane.push(push(seq))
    assert transport.frames == []
    transport.send("replayed 1..5")
    lane.open(5)
    lane.push(push(6))  # broadcast twice
    lane.push(push(7))
    assert transport.frames == ["replayed 1..5", "frame-message-6", "frame-message-7"]


async def test_dispatch_writes_to_lanes_and_mails_the_others() -> None:
    transport = MemoryTransport()
    me = otp.self()
    other = otp.spawn(otp.receive)
    subscribers: list[tuple[otp.Pid, Any]] = [(me, None), (other, Lane(transport, 2))]
    dispatch(subscribers, None, push(1))
    assert (await otp.receive(timeout=1)).seq == 1
    assert transport.frames == ["frame-message-1"]
    dispatch(subscribers, me, push(0, "typing"))  # from me: not to me
    assert transport.frames == ["frame-message-1", "frame-typing-0"]
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)
    otp.exit(other, otp.KILL)


async def test_a_member_removed_has_only_their_lanes_removed_and_wakes_no_process() -> None:
    woken: list[Any] = []

    async def connection() -> None:
        woken.append(await otp.receive())

    pids = [otp.spawn(connection) for _ in range(3)]
    transports = [MemoryTransport() for _ in pids]
    removed: list[Lane] = []
    lanes = [
        Lane(t, user_id, room_id=7, on_removed=removed.append)
        for t, user_id in zip(transports, (1, 2, 2), strict=True)
    ]
    listener = otp.self()  # a subscriber without a lane: it gets the message itself
    subscribers: list[tuple[otp.Pid, Any]] = [*zip(pids, lanes, strict=True), (listener, None)]
    dispatch(subscribers, None, MemberRemoved(7, 2, "kicked"))
    dispatch(subscribers, None, push(1))
    await asyncio.sleep(0)
    assert [lane.closed for lane in lanes] == [False, True, True]
    notice = '{"type":"removed","room":7,"reason":"kicked"}'
    assert [t.frames for t in transports] == [["frame-message-1"], [notice], [notice]]
    assert removed == lanes[1:]
    assert woken == []
    assert await otp.receive(timeout=1) == MemberRemoved(7, 2, "kicked")
    for pid in pids:
        otp.exit(pid, otp.KILL)


async def test_a_join_since_racing_a_burst_gets_every_message_once_in_order(
    backend: Backend,
) -> None:
    async with backend.database() as database, running(database) as tree:
        ada, pid, transport = await connected(tree, "ada")
        bob, _, _ = await connected(tree, "bob")
        room = await chat.create_room(database, bob, "lobby")
        await chat.join(database, room.id, ada)
        for i in range(1, 21):
            await room_server.send(tree, room.id, bob, f"m{i}", f"c{i}")

        async def burst() -> None:
            for i in range(21, 61):
                await room_server.send(tree, room.id, bob, f"m{i}", f"c{i}")

        sending = asyncio.create_task(burst())
        await handle_frame(pid, json.dumps({"id": "j", "op": "join", "room": room.id, "since": 5}))
        await sending
        assert (await otp.call(pid, "state"))["joined"] == {room.id: 60}
        assert [frame["seq"] for frame in pushed(transport)] == list(range(6, 61))


async def test_a_kicked_member_is_told_and_gets_nothing_more(backend: Backend) -> None:
    async with backend.database() as database, running(database) as tree:
        ada, ada_pid, ada_transport = await connected(tree, "ada")
        bob, _, _ = await connected(tree, "bob")
        room = await chat.create_room(database, ada, "lobby")
        await chat.join(database, room.id, bob)
        _, bob_pid, bob_transport = await connected(tree, "bob", new=False)  # a second device
        for pid in (ada_pid, bob_pid):
            await handle_frame(pid, json.dumps({"id": "j", "op": "join", "room": room.id}))
        await room_server.send(tree, room.id, ada, "before", "c1")
        await chat.kick(database, room.id, ada, bob)
        room_server.member_removed(tree, room.id, bob, "kicked")
        await room_server.send(tree, room.id, ada, "after", "c2")
        assert (await otp.call(bob_pid, "state"))["joined"] == {}  # the removal was handled
        assert [frame["message"]["body"] for frame in pushed(bob_transport)] == ["before"]
        assert pushed(bob_transport, "removed") == [
            {"type": "removed", "room": room.id, "reason": "kicked"}
        ]
        assert [frame["message"]["body"] for frame in pushed(ada_transport)] == ["before", "after"]
        assert pushed(ada_transport, "removed") == []


async def bob_in_ada_s_room(tree: ChatTree) -> tuple[int, int, otp.Pid, MemoryTransport, Any]:
    """ada's room with bob a member, and bob's connection (not joined to it yet)."""
    database = tree.require_database()
    ada, _, _ = await connected(tree, "ada")
    bob, bob_pid, bob_transport = await connected(tree, "bob")
    room = await chat.create_room(database, ada, "lobby")
    await chat.join(database, room.id, bob)
    return ada, bob, bob_pid, bob_transport, room


async def test_a_member_kicked_while_their_join_checks_membership_gets_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.database() as database, running(database) as tree:
        ada, bob, bob_pid, bob_transport, room = await bob_in_ada_s_room(tree)
        checked = connection_module.require_member

        async def kicked_meanwhile(*args: Any) -> Any:
            member = await checked(*args)
            await chat.kick(database, room.id, ada, bob)  # over HTTP, at that very moment
            room_server.member_removed(tree, room.id, bob, "kicked")
            return member

        monkeypatch.setattr(connection_module, "require_member", kicked_meanwhile)
        await handle_frame(bob_pid, json.dumps({"id": "j", "op": "join", "room": room.id}))
        monkeypatch.undo()
        await room_server.send(tree, room.id, ada, "after the kick", "c1")
        assert pushed(bob_transport) == []
        assert json.loads(bob_transport.frames[-1])["error"]["code"] == "not_member"
        assert (await otp.call(bob_pid, "state"))["joined"] == {}
        assert tree.presence.get(room_topic(room.id), bob) == []


async def test_a_member_kicked_during_the_replay_gets_no_more_of_it(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.database() as database, running(database) as tree:
        ada, bob, bob_pid, bob_transport, room = await bob_in_ada_s_room(tree)
        for i in range(3):
            await room_server.send(tree, room.id, ada, f"m{i}", f"c{i}")
        read = connection_module.since

        async def kicked_meanwhile(*args: Any) -> Any:
            await chat.kick(database, room.id, ada, bob)
            room_server.member_removed(tree, room.id, bob, "kicked")
            return await read(*args)

        monkeypatch.setattr(connection_module, "since", kicked_meanwhile)
        join = {"id": "j", "op": "join", "room": room.id, "since": 0}
        await handle_frame(bob_pid, json.dumps(join))
        frames = [json.loads(text) for text in bob_transport.frames[1:]]  # after auth's reply
        assert [f.get("type") or f["error"]["code"] for f in frames] == ["removed", "not_member"]


async def test_a_failed_replay_leaves_the_room_unjoined_and_a_join_again_works(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.database() as database, running(database) as tree:
        ada, _, bob_pid, bob_transport, room = await bob_in_ada_s_room(tree)

        async def failing(*args: Any) -> Any:
            raise ConnectionError("the database went away for a moment")

        monkeypatch.setattr(connection_module, "since", failing)
        join = {"id": "j", "op": "join", "room": room.id, "since": 0}
        await handle_frame(bob_pid, json.dumps(join))
        monkeypatch.undo()
        assert json.loads(bob_transport.frames[-1])["error"]["code"] == "internal"
        assert (await otp.call(bob_pid, "state"))["joined"] == {}
        assert tree.pubsub.subscriber_count(room_topic(room.id)) == 0
        await handle_frame(bob_pid, json.dumps({"id": "j2", "op": "join", "room": room.id}))
        assert json.loads(bob_transport.frames[-1])["ok"] is True
        await room_server.send(tree, room.id, ada, "hello", "c1")
        assert [f["message"]["body"] for f in pushed(bob_transport)] == ["hello"]


def test_user_sockets_hold_one_transport_bare_and_more_in_a_list() -> None:
    sockets = UserSockets()
    first, second, third = MemoryTransport(), MemoryTransport(), MemoryTransport()
    assert sockets.of(7) == []
    sockets.add(7, first)
    assert sockets.of(7) == [first]
    sockets.add(7, second)
    sockets.add(7, third)
    assert sockets.of(7) == [first, second, third]
    sockets.remove(7, second)
    sockets.remove(7, second)  # twice: nothing more happens
    assert sockets.of(7) == [first, third]
    sockets.remove(7, first)
    assert sockets.of(7) == [third]
    sockets.remove(7, third)
    assert (sockets.of(7), len(sockets)) == ([], 0)
    sockets.remove(8, first)  # never added
    assert len(sockets) == 0
