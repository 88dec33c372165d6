"""Messages for members with no device connected: the events and hooks of ``offline.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chat_backends import Backend
from rooms_helpers import add_users

from trunkline import chat, db, otp
from trunkline.chat import room_server
from trunkline.chat.offline import OFFLINE_EVENT, OfflineRecipient, offline_recipients
from trunkline.chat.presence import track_user
from trunkline.chat.tree import ChatTree


@asynccontextmanager
async def running(
    database: db.Database,
) -> AsyncIterator[tuple[ChatTree, asyncio.Queue[OfflineRecipient]]]:
    tree = ChatTree(database)
    found: asyncio.Queue[OfflineRecipient] = asyncio.Queue()

    async def hook(recipient: OfflineRecipient) -> None:
        await found.put(recipient)

    tree.offline_hooks.append(hook)
    pid = await tree.start_link()
    try:
        yield tree, found
    finally:
        otp.unlink(pid)
        await otp.stop(pid, otp.SHUTDOWN)


async def test_a_direct_message_to_a_member_with_no_device_is_an_event(backend: Backend) -> None:
    async with backend.database() as database, running(database) as (tree, found):
        ada, bob = await add_users(database, "ada", "bob")
        room = await chat.open_direct(database, ada, bob)
        with otp.telemetry.capture([OFFLINE_EVENT]) as events:
            sent = await room_server.send(tree, room.id, ada, "are you there?", "c1")
            recipient = await asyncio.wait_for(found.get(), 5)
        assert (recipient.user_id, recipient.reason, recipient.seq) == (bob, "direct", sent.seq)
        assert (recipient.sender_id, recipient.message.body) == (ada, "are you there?")
        [event] = events
        assert event.metadata["user_id"] == bob
        assert event.metadata["reason"] == "direct"
        # A retried send (a duplicate) raises nothing again: the next event is the next send's.
        await room_server.send(tree, room.id, ada, "are you there?", "c1")
        second = await room_server.send(tree, room.id, ada, "hello?", "c2")
        assert (await asyncio.wait_for(found.get(), 5)).seq == second.seq
        assert found.empty()


async def test_members_with_a_device_connected_are_nobody_offline(backend: Backend) -> None:
    async with backend.database() as database, running(database) as (tree, _):
        ada, bob, eve = await add_users(database, "ada", "bob", "eve")
        direct = await chat.open_direct(database, ada, bob)
        lobby = await chat.create_room(database, ada, "lobby")
        await chat.join(database, lobby.id, eve)
        dm = await chat.append(database, direct.id, ada, "hi", "c1")
        mention = await chat.append(database, lobby.id, ada, "@eve hi", "c2")
        assert [r.user_id for r in await offline_recipients(database, tree, dm, direct=True)] == [
            bob
        ]
        track_user(tree, otp.self(), bob, 1)
        track_user(tree, otp.self(), eve, 2)
        assert await offline_recipients(database, tree, dm, direct=True) == []
        assert await offline_recipients(database, tree, mention, direct=False) == []


async def test_a_mention_of_a_member_with_no_device_is_an_event(backend: Backend) -> None:
    async with backend.database() as database, running(database) as (tree, found):
        ada, bob, eve, _zed = await add_users(database, "ada", "bob", "eve", "zed")
        room = await chat.create_room(database, ada, "lobby")
        for user in (bob, eve):
            await chat.join(database, room.id, user)
        track_user(tree, otp.self(), eve, 1)  # eve is here: no event for her
        # zed is no member; ada mentions herself; "nobody" is no account.
        sent = await room_server.send(tree, room.id, ada, "@Bob @eve @zed @ada @nobody look", "c1")
        recipient = await asyncio.wait_for(found.get(), 5)
        assert (recipient.user_id, recipient.reason, recipient.seq) == (bob, "mention", sent.seq)
        # A group message that mentions nobody is for nobody offline: the next event is the
        # one of the message after it.
        await room_server.send(tree, room.id, ada, "no mention here", "c2")
        last = await room_server.send(tree, room.id, eve, "ping @bob", "c3")
        following = await asyncio.wait_for(found.get(), 5)
        assert (following.seq, following.sender_id) == (last.seq, eve)
        assert found.empty()


async def test_a_failing_hook_does_not_stop_the_others_or_the_room(backend: Backend) -> None:
    async with backend.database() as database, running(database) as (tree, found):
        ada, bob = await add_users(database, "ada", "bob")
        room = await chat.open_direct(database, ada, bob)

        def broken(recipient: OfflineRecipient) -> None:
            raise RuntimeError("the hook is broken")

        tree.offline_hooks.insert(0, broken)
        await room_server.send(tree, room.id, ada, "hi", "c1")
        assert (await asyncio.wait_for(found.get(), 5)).user_id == bob
        assert (await room_server.send(tree, room.id, ada, "again", "c2")).seq == 2
