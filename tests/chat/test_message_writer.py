"""The node's message writer on both backends: sends of many rooms stored in batches, each
answered as ``append`` would answer it alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, migrated_below, refuse_bodies, rooms_database

from trunkline import chat, db
from trunkline.chat import moderation
from trunkline.chat.exceptions import InvalidInput, Muted, NotFound, NotMember
from trunkline.chat.message_writer import MAX_BATCH, MessageWriter
from trunkline.chat.messages import Message, get_message
from trunkline.chat.rooms import create_room, join
from trunkline.chat.tree import ChatLimits, ChatTree
from trunkline.otp import telemetry

QUERY_STOP = ("trunkline", "db", "query", "stop")


def statements(seen: list[telemetry.Emitted]) -> list[str]:
    """The statements run, by name, in order."""
    return [event.metadata["statement"] for event in seen]


async def store_in_turn(
    writer: MessageWriter, database: db.Database, rooms: list[int], owners: list[int], count: int
) -> list[Message]:
    """``count`` sends handed over at once, to the rooms in turn, each by the room's owner."""
    n = len(rooms)
    return await asyncio.gather(
        *(
            writer.store(database, rooms[i % n], owners[i % n], f"m{i}", f"c{i}")
            for i in range(count)
        )
    )


async def rooms_of(database: db.Database, count: int) -> tuple[list[int], list[int]]:
    """``count`` rooms, each owned by a user of its own; (rooms, owners)."""
    owners = await add_users(database, *(f"owner{i}" for i in range(count)))
    rooms = [(await create_room(database, owner, f"room{i}")).id for i, owner in enumerate(owners)]
    return rooms, owners


async def test_sends_of_many_rooms_at_once_go_in_few_statements(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 40)
        writer = MessageWriter()
        with telemetry.capture([QUERY_STOP]) as seen:
            sent = await asyncio.gather(
                *(
                    writer.store(database, room, owner, f"hello {room}", "c1")
                    for room, owner in zip(rooms, owners, strict=True)
                )
            )
        assert [(m.room_id, m.sender_id, m.seq, m.body) for m in sent] == [
            (room, owner, 1, f"hello {room}") for room, owner in zip(rooms, owners, strict=True)
        ]
        # Handed over together: one statement stored them all, at one time.
        assert statements(seen) == ["chat.messages.append_batch"]
        assert len({m.created_at for m in sent}) == 1
        # Each answer is the stored message, as it reads back.
        for message in sent:
            assert await get_message(database, message.room_id, message.seq) == message


async def test_a_rooms_sends_at_once_are_numbered_in_order_without_gaps(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 3)
        writer = MessageWriter()
        with telemetry.capture([QUERY_STOP]) as seen:
            sent = await store_in_turn(writer, database, rooms, owners, 30)
        for room in rooms:
            mine = [m for m in sent if m.room_id == room]
            assert sorted(m.seq for m in mine) == list(range(1, 11))
            # A room's sends keep the order they were handed over in.
            assert [m.body for m in sorted(mine, key=lambda m: m.seq)] == [m.body for m in mine]
        if backend.name == "sqlite":
            # The one writer numbers alone: a room's sends share the statement.
            assert statements(seen) == ["chat.messages.append_batch"]
        else:
            # Other nodes may number the same rooms: one message per room per statement.
            assert statements(seen) == ["chat.messages.append_batch"] * 10


async def test_a_refused_send_among_a_rooms_sends_leaves_no_gap(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 1)
        [muted] = await add_users(database, "muted")
        await join(database, rooms[0], muted)
        await moderation.mute(database, rooms[0], owners[0], muted)
        writer = MessageWriter()
        results = await asyncio.gather(
            writer.store(database, rooms[0], owners[0], "one", "a"),
            writer.store(database, rooms[0], muted, "shh", "b"),
            writer.store(database, rooms[0], owners[0], "two", "c"),
            return_exceptions=True,
        )
        one, was_muted, two = results
        assert isinstance(was_muted, Muted)
        assert not isinstance(one, BaseException)
        assert not isinstance(two, BaseException)
        assert [(one.seq, one.body), (two.seq, two.body)] == [(1, "one"), (2, "two")]


async def test_a_retry_while_its_send_waits_is_stored_once(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 1)
        writer = MessageWriter()
        first, retry, after = await asyncio.gather(
            writer.store(database, rooms[0], owners[0], "hello", "same"),
            writer.store(database, rooms[0], owners[0], "hello", "same"),
            writer.store(database, rooms[0], owners[0], "after", "other"),
        )
        assert (first.seq, first.duplicate) == (1, False)
        assert (retry.id, retry.seq, retry.duplicate) == (first.id, 1, True)
        # The retry waited for the next batch, and the room's later send behind it.
        assert (after.seq, after.body) == (2, "after")
        assert await database.fetch_val("SELECT count(*) FROM chat_messages") == 2


async def test_each_send_of_a_batch_gets_its_own_answer(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 4)
        [muted, outsider] = await add_users(database, "muted", "outsider")
        await join(database, rooms[1], muted)
        await moderation.mute(database, rooms[1], owners[1], muted)
        writer = MessageWriter()
        first = await writer.store(database, rooms[3], owners[3], "first", "dup")
        results = await asyncio.gather(
            writer.store(database, rooms[0], owners[0], "fine", "a"),
            writer.store(database, rooms[1], muted, "shh", "b"),
            writer.store(database, rooms[2], outsider, "let me in", "c"),
            writer.store(database, rooms[3], owners[3], "first again", "dup"),
            writer.store(database, 10_000, owners[0], "nowhere", "d"),
            return_exceptions=True,
        )
        fine, was_muted, not_member, duplicate, no_room = results
        assert not isinstance(fine, BaseException)
        assert (fine.seq, fine.body) == (1, "fine")
        assert isinstance(was_muted, Muted)
        assert isinstance(not_member, NotMember)
        assert not isinstance(duplicate, BaseException)
        assert duplicate.duplicate
        assert (duplicate.id, duplicate.body) == (first.id, "first")
        assert isinstance(no_room, NotFound)
        rows = await database.fetch("SELECT room_id, seq FROM chat_messages ORDER BY room_id")
        assert [tuple(row) for row in rows] == [(rooms[0], 1), (rooms[3], 1)]


async def test_a_row_the_database_refuses_fails_alone(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 3)
        await refuse_bodies(database, "refused")
        writer = MessageWriter()
        results = await asyncio.gather(
            writer.store(database, rooms[0], owners[0], "warm-up", "w"),
            writer.store(database, rooms[1], owners[1], "fine", "a"),
            writer.store(database, rooms[2], owners[2], "refused", "b"),
            return_exceptions=True,
        )
        assert [getattr(r, "body", None) for r in results[:2]] == ["warm-up", "fine"]
        assert isinstance(results[2], db.DatabaseError)
        assert await database.fetch_val("SELECT count(*) FROM chat_messages") == 2


async def test_bad_input_is_refused_before_it_is_queued(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 1)
        writer = MessageWriter()
        with pytest.raises(InvalidInput):
            await writer.store(database, rooms[0], owners[0], "   ", "c1")
        with pytest.raises(InvalidInput):
            await writer.store(database, rooms[0], owners[0], "x" * 10, "c1", max_chars=5)
        with pytest.raises(InvalidInput):
            await writer.store(database, rooms[0], owners[0], "hi", "")
        with pytest.raises(InvalidInput):  # a lone surrogate: no text to store or send
            await writer.store(database, rooms[0], owners[0], "bad \ud800", "c1")
        assert await database.fetch_val("SELECT count(*) FROM chat_messages") == 0


async def test_a_caller_that_gives_up_before_its_batch_stores_nothing(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 3)
        writer = MessageWriter()
        first = writer.store(database, rooms[0], owners[0], "a", "a")
        abandoned = writer.store(database, rooms[1], owners[1], "b", "b")
        third = writer.store(database, rooms[2], owners[2], "c", "c")
        abandoned.cancel()  # all three are waiting; the writer has taken no batch yet
        await asyncio.gather(first, third)
        rows = await database.fetch("SELECT body FROM chat_messages ORDER BY body")
        assert [row[0] for row in rows] == ["a", "c"]


async def test_a_batch_holds_at_most_max_batch_sends(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        count = MAX_BATCH + 10
        users = await add_users(database, *(f"u{i}" for i in range(count)))
        room = await create_room(database, users[0], "big")
        rooms = [room.id]
        for i, user in enumerate(users[1:]):
            rooms.append((await create_room(database, user, f"r{i}")).id)
        writer = MessageWriter()
        sent = await asyncio.gather(
            *(writer.store(database, r, u, "x", "c") for r, u in zip(rooms, users, strict=True))
        )
        assert {m.seq for m in sent} == {1}
        assert await database.fetch_val("SELECT count(*) FROM chat_messages") == count


async def test_a_send_on_a_quiet_writer_does_not_wait_for_the_interval(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 1)
        writer = MessageWriter(batch_interval_s=0.9)
        first = await asyncio.wait_for(writer.store(database, rooms[0], owners[0], "a", "1"), 0.8)
        assert first.seq == 1


async def test_sends_during_a_batch_and_just_after_it_go_together(backend: Backend) -> None:
    # A busy node: the next batch starts an interval after the last began, with what came
    # meanwhile, not with the first send to arrive once the last batch is stored.
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 3)
        writer = MessageWriter(batch_interval_s=0.5)
        with telemetry.capture([QUERY_STOP]) as seen:
            first = writer.store(database, rooms[0], owners[0], "first", "1")
            await asyncio.sleep(0)  # the writer takes it: a batch of its own
            during = writer.store(database, rooms[1], owners[1], "during", "2")
            await first
            after = writer.store(database, rooms[2], owners[2], "after", "3")
            assert not during.done()
            await asyncio.gather(during, after)
        assert statements(seen) == ["chat.messages.append_batch"] * 2
        assert (await during).created_at == (await after).created_at  # one statement


async def test_a_writer_that_fails_leaves_no_caller_waiting(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with rooms_database(backend) as database:
        rooms, owners = await rooms_of(database, 2)
        writer = MessageWriter()

        async def broken(self: MessageWriter, batch: list[object]) -> None:
            raise RuntimeError("a bug in the writer")

        monkeypatch.setattr(MessageWriter, "_store", broken)
        results = await asyncio.gather(
            *(writer.store(database, r, u, "x", "c") for r, u in zip(rooms, owners, strict=True)),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [RuntimeError, RuntimeError]
        monkeypatch.undo()
        # The next send starts a writer afresh.
        assert (await writer.store(database, rooms[0], owners[0], "again", "c2")).seq == 1


@pytest.fixture
def sqlite(tmp_path: Path) -> Backend:
    """For what only SQLite has: the batch's statement returning one row (migration 5)."""
    return Backend("sqlite", tmp_path)


async def test_a_batch_comes_back_in_one_row_whatever_its_size(sqlite: Backend) -> None:
    # Each row a statement returns would cost SQLite's writer thread the GIL once more.
    async with rooms_database(sqlite) as database:
        rooms, owners = await rooms_of(database, 3)
        writer = MessageWriter()
        with telemetry.capture([QUERY_STOP]) as seen:
            sent = await store_in_turn(writer, database, rooms, owners, 90)
        assert statements(seen) == ["chat.messages.append_batch"]
        assert seen[0].measurements["rows"] == 1
        for message in sent:
            assert await get_message(database, message.room_id, message.seq) == message


async def test_a_batch_stored_where_the_last_message_was_removed_answers_its_own(
    sqlite: Backend,
) -> None:
    # SQLite gives the next message the id of the last one if that one is gone: a batch's
    # messages are those above the highest id before it, whatever ids were used before.
    async with rooms_database(sqlite) as database:
        rooms, owners = await rooms_of(database, 2)
        writer = MessageWriter()
        first = await writer.store(database, rooms[0], owners[0], "kept", "a")
        gone = await writer.store(database, rooms[1], owners[1], "removed", "b")
        await database.execute("DELETE FROM chat_messages WHERE id = $1", gone.id)
        again = await asyncio.gather(
            writer.store(database, rooms[1], owners[1], "after", "c"),
            writer.store(database, rooms[0], owners[0], "later", "d"),
        )
        assert sorted(m.id for m in again) == [gone.id, gone.id + 1]  # one given again
        assert [(m.room_id, m.seq, m.body) for m in again] == [
            (rooms[1], 1, "after"),
            (rooms[0], 2, "later"),
        ]
        assert first.seq == 1
        for message in again:
            assert await get_message(database, message.room_id, message.seq) == message


async def test_batches_carry_on_from_messages_stored_before_the_batch_migration(
    sqlite: Backend,
) -> None:
    async with migrated_below(sqlite, 5) as (database, ada, room):
        await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
        writer = MessageWriter()
        sent = await asyncio.gather(
            *(writer.store(database, room, ada, f"new {i}", f"n{i}") for i in range(3))
        )
        assert [(m.seq, m.body) for m in sent] == [(2, "new 0"), (3, "new 1"), (4, "new 2")]


async def test_the_chat_tree_gives_its_writer_the_batch_interval_of_its_limits() -> None:
    assert (
        ChatTree(limits=ChatLimits(batch_interval_s=0.01)).message_writer.batch_interval_s == 0.01
    )
    assert ChatTree().message_writer.batch_interval_s == 0  # off by default
