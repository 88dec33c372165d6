"""Messages on both backends: sequence numbers, idempotent sends, permissions, edits and
deletions, history and resume, read markers and unread counts, mentions."""

from __future__ import annotations

import asyncio

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, rooms_database, rooms_databases

from trunkline import db, otp
from trunkline.chat import moderation
from trunkline.chat.exceptions import Forbidden, InvalidInput, Muted, NotFound, NotMember
from trunkline.chat.history import MAX_HISTORY_LIMIT, history, since
from trunkline.chat.mentions import mentions
from trunkline.chat.messages import append, delete_message, edit_message, get_message
from trunkline.chat.read_markers import mark_read, unread_counts
from trunkline.chat.rooms import Role, create_room, join
from trunkline.otp import telemetry

QUERY_STOP = ("trunkline", "db", "query", "stop")


async def lobby(database: db.Database, *names: str) -> tuple[int, list[int]]:
    """A public room owned by the first of ``names``, the others joined."""
    users = await add_users(database, *names)
    room = await create_room(database, users[0], "lobby")
    for user in users[1:]:
        await join(database, room.id, user)
    return room.id, users


async def seqs(database: db.Database, room: int) -> list[int]:
    rows = await database.fetch(
        "SELECT seq FROM chat_messages WHERE room_id = $1 ORDER BY seq", room
    )
    return [row[0] for row in rows]


async def test_messages_are_numbered_from_one_per_room_with_no_gap(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob] = await lobby(database, "ada", "bob")
        other = (await create_room(database, bob, "other")).id
        first = await append(database, room, ada, "hello", "c1")
        assert (first.seq, first.body, first.sender_id, first.version) == (1, "hello", ada, 1)
        assert first.created_at == otp.current_node().clock.now()
        assert not first.duplicate
        assert (first.edited_at, first.deleted_at) == (None, None)
        assert (await append(database, other, bob, "elsewhere", "c1")).seq == 1
        sent = await asyncio.gather(
            *(append(database, room, (ada, bob)[i % 2], f"m{i}", f"x{i}") for i in range(60))
        )
        assert sorted(m.seq for m in sent) == list(range(2, 62))
        assert await seqs(database, room) == list(range(1, 62))
        assert await get_message(database, room, 1) == first


async def test_a_retried_send_returns_the_stored_message_and_stores_nothing(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob] = await lobby(database, "ada", "bob")
        stored = await append(database, room, ada, "hello", "same")
        await append(database, room, bob, "between", "other")
        again = await append(database, room, ada, "hello, edited in the retry", "same")
        assert again.duplicate
        assert (again.id, again.seq, again.body) == (stored.id, 1, "hello")
        # Another sender's id is theirs: no clash.
        assert (await append(database, room, bob, "mine", "same")).seq == 3
        # A retry of what was stored before a mute still finds it.
        await moderation.mute(database, room, ada, bob)
        assert (await append(database, room, bob, "mine", "same")).duplicate
        retried = await asyncio.gather(
            *(append(database, room, ada, "x", "burst") for _ in range(8))
        )
        assert len({m.id for m in retried}) == 1
        assert sum(not m.duplicate for m in retried) == 1
        assert await seqs(database, room) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("body", "client_msg_id", "field", "code"),
    [
        ("", "c", "body", "empty"),
        ("  \n ", "c", "body", "empty"),
        ("x" * 4001, "c", "body", "too_long"),
        ("a\x00b", "c", "body", "control_characters"),
        ("a\ud800b", "c", "body", "not_unicode"),
        (42, "c", "body", "wrong_type"),
        ("hi", "", "client_msg_id", "empty"),
        ("hi", "c" * 129, "client_msg_id", "too_long"),
        ("hi", 7, "client_msg_id", "wrong_type"),
        ("hi", "c\udfff", "client_msg_id", "not_unicode"),
    ],
)
async def test_a_bad_send_is_refused_and_stores_nothing(
    backend: Backend, body: object, client_msg_id: object, field: str, code: str
) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        with pytest.raises(InvalidInput) as raised:
            await append(database, room, ada, body, client_msg_id)  # type: ignore[arg-type]
        assert (raised.value.field, raised.value.code) == (field, code)
        assert await seqs(database, room) == []


async def test_the_longest_body_is_configurable(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        assert (await append(database, room, ada, "x" * 4000, "a")).seq == 1
        assert (await append(database, room, ada, "x" * 10, "b", max_chars=10)).seq == 2
        with pytest.raises(InvalidInput):
            await append(database, room, ada, "x" * 11, "c", max_chars=10)


async def test_only_members_who_are_not_muted_send(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob, cy] = await lobby(database, "ada", "bob", "cy")
        await moderation.kick(database, room, ada, cy)
        with pytest.raises(NotMember):
            await append(database, room, cy, "hi", "1")
        with pytest.raises(NotFound):
            await append(database, room + 100, ada, "hi", "1")
        await moderation.mute(database, room, ada, bob, duration_s=30)
        with pytest.raises(Muted) as raised:
            await append(database, room, bob, "hi", "1")
        assert raised.value.until is not None
        assert await seqs(database, room) == []
        await asyncio.sleep(31)  # the mute ends on its own
        assert (await append(database, room, bob, "hi", "1")).seq == 1


async def test_a_rolled_back_append_leaves_no_gap(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        await append(database, room, ada, "one", "1")

        async def give_up() -> None:
            async with database.transaction() as tx:
                assert (await append(tx, room, ada, "two", "2")).seq == 2
                raise RuntimeError("the caller gives up")

        with pytest.raises(RuntimeError):
            await give_up()
        assert (await append(database, room, ada, "two", "2")).seq == 2
        assert await seqs(database, room) == [1, 2]


async def test_a_second_writer_on_another_node_retries_with_the_next_number(
    backend: Backend,
) -> None:
    async with rooms_databases(backend, 2) as (first, second):
        room, [ada, bob] = await lobby(first, "ada", "bob")
        with telemetry.capture([QUERY_STOP]) as seen:
            async with first.transaction() as tx:
                mine = await append(tx, room, ada, "first", "a")
                theirs = asyncio.create_task(append(second, room, bob, "second", "b"))
                if backend.name == "postgresql":
                    # Wait until the second insert waits on this one's number.
                    await blocked_by(first, await tx.fetch_val("SELECT pg_backend_pid()"))
                else:
                    await asyncio.sleep(0.1)  # SQLite: its BEGIN waits for the writer
                assert not theirs.done()
            stored = await theirs
        assert (mine.seq, stored.seq) == (1, 2)
        empty_inserts = [
            e
            for e in seen
            if e.metadata["statement"].startswith("chat.messages.append")
            and e.measurements["rows"] == 0
        ]
        # PostgreSQL: the second insert (the one-statement path) found 1 taken, stored
        # nothing, and the careful path tried again.
        # SQLite: one writer at a time, so the second never even tried 1.
        assert len(empty_inserts) == (1 if backend.name == "postgresql" else 0)
        assert await seqs(first, room) == [1, 2]


async def blocked_by(database: db.Database, pid: int) -> None:
    """Wait until a statement of another backend waits for ``pid``'s transaction."""
    for _ in range(300):
        waiting = await database.fetch_val(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing ever waited for backend {pid}")


async def test_two_nodes_appending_at_once_all_succeed_with_no_gap_and_no_duplicate(
    backend: Backend,
) -> None:
    async with rooms_databases(backend, 2) as databases:
        room, users = await lobby(databases[0], "ada", "bob")
        sent = await asyncio.gather(
            *(append(databases[i % 2], room, users[i % 2], f"m{i}", f"id{i}") for i in range(80))
        )
        assert sorted(m.seq for m in sent) == list(range(1, 81))
        assert await seqs(databases[0], room) == list(range(1, 81))
        # And the retries of all of them store nothing more.
        again = await asyncio.gather(
            *(append(databases[1 - i % 2], room, users[i % 2], "r", f"id{i}") for i in range(80))
        )
        assert all(m.duplicate for m in again)
        assert [m.seq for m in again] == [m.seq for m in sent]
        assert await seqs(databases[0], room) == list(range(1, 81))


async def test_a_sender_edits_their_message_in_place(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob] = await lobby(database, "ada", "bob")
        sent = await append(database, room, bob, "helo", "1")
        await append(database, room, ada, "next", "2")
        await asyncio.sleep(5)
        edited = await edit_message(database, room, 1, bob, "hello")
        assert (edited.seq, edited.body, edited.version) == (1, "hello", 2)
        assert edited.edited_at == otp.current_node().clock.now() != sent.created_at
        assert (await edit_message(database, room, 1, bob, "hello!")).version == 3
        with pytest.raises(Forbidden):
            await edit_message(database, room, 1, ada, "not mine")  # even the owner
        with pytest.raises(InvalidInput):
            await edit_message(database, room, 1, bob, "")
        with pytest.raises(NotFound):
            await edit_message(database, room, 9, bob, "nothing there")
        await moderation.mute(database, room, ada, bob)
        with pytest.raises(Muted):
            await edit_message(database, room, 1, bob, "muted")
        assert (await get_message(database, room, 1)).body == "hello!"
        assert await seqs(database, room) == [1, 2]


async def test_a_deleted_message_is_a_tombstone_that_keeps_its_number(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob, cy] = await lobby(database, "ada", "bob", "cy")
        await moderation.set_role(database, room, ada, bob, Role.ADMIN)
        for n, user in enumerate((cy, cy, ada), start=1):
            await append(database, room, user, f"message {n}", str(n))
        with pytest.raises(Forbidden):
            await delete_message(database, room, 3, cy)  # not theirs
        gone = await delete_message(database, room, 1, cy)
        assert (gone.seq, gone.body, gone.version, gone.deleted) == (1, "", 2, True)
        assert gone.deleted_at == otp.current_node().clock.now()
        assert await delete_message(database, room, 1, cy) == gone  # again: no change
        assert (await delete_message(database, room, 2, bob)).deleted  # an admin deletes any
        with pytest.raises(Forbidden):
            await edit_message(database, room, 1, cy, "back")
        page = await history(database, room)
        assert [(m.seq, m.body, m.deleted) for m in page] == [
            (1, "", True),
            (2, "", True),
            (3, "message 3", False),
        ]
        with pytest.raises(NotFound):
            await delete_message(database, room, 4, ada)


async def test_history_pages_by_sequence_number(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        for n in range(1, 31):
            await append(database, room, ada, f"m{n}", str(n))

        async def page(**cursor: int | None) -> list[int]:
            return [m.seq for m in await history(database, room, **cursor)]

        assert await page(limit=5) == [26, 27, 28, 29, 30]  # the latest
        assert await page(before=26, limit=5) == [21, 22, 23, 24, 25]
        assert await page(before=3, limit=5) == [1, 2]
        assert await page(after=27, limit=5) == [28, 29, 30]
        assert await page(after=10, limit=3) == [11, 12, 13]
        assert await page(after=10, before=13, limit=5) == [11, 12]
        assert await page(after=30) == []
        assert await page() == list(range(1, 31))
        assert await page(after=0, limit=10_000) == list(range(1, 31))
        for bad in ({"limit": 0}, {"before": -1}, {"after": "3"}):
            with pytest.raises(InvalidInput):
                await history(database, room, **bad)  # type: ignore[arg-type]


async def test_history_is_capped(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        await database.execute_many(
            "INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, "
            "created_at) VALUES ($1, $2, $3, $4, 'x', $5)",
            [(room, n, ada, str(n), otp.current_node().clock.now()) for n in range(1, 251)],
        )
        assert len(await history(database, room, limit=1000)) == MAX_HISTORY_LIMIT
        resume = await since(database, room, 0, limit=1000)
        assert (len(resume.messages), resume.complete) == (MAX_HISTORY_LIMIT, False)


async def test_since_returns_what_was_missed_and_whether_that_is_all(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada] = await lobby(database, "ada")
        for n in range(1, 11):
            await append(database, room, ada, f"m{n}", str(n))
        resume = await since(database, room, 4, limit=6)
        assert ([m.seq for m in resume.messages], resume.complete) == ([5, 6, 7, 8, 9, 10], True)
        partial = await since(database, room, 4, limit=5)
        assert ([m.seq for m in partial.messages], partial.complete) == ([5, 6, 7, 8, 9], False)
        rest = await since(database, room, partial.messages[-1].seq, limit=5)
        assert ([m.seq for m in rest.messages], rest.complete) == ([10], True)
        caught_up = await since(database, room, 10)
        assert (caught_up.messages, caught_up.complete) == ([], True)
        with pytest.raises(InvalidInput):
            await since(database, room, -1)


async def test_history_reads_an_index_not_the_table(backend: Backend) -> None:
    from trunkline.chat.history import _BEFORE

    async with rooms_database(backend) as database:
        args = (1, 0, 100, 50)
        if backend.name == "sqlite":
            rows = await database.fetch("EXPLAIN QUERY PLAN " + _BEFORE.sqlite, *args)
            plan = " ".join(str(row["detail"]) for row in rows)
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
            assert "SCAN" not in plan, plan
        else:
            async with database.transaction() as tx:
                # The table is empty: make the planner say whether it could use an index.
                await tx.execute("SET LOCAL enable_seqscan = off")
                rows = await tx.fetch("EXPLAIN " + _BEFORE.postgresql, *args)
            plan = " ".join(row[0] for row in rows)
            assert "Index" in plan, plan
            assert "Seq Scan" not in plan, plan


async def test_a_read_marker_only_moves_forward_and_not_past_the_end(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob, cy] = await lobby(database, "ada", "bob", "cy")
        for n in range(1, 6):
            await append(database, room, ada, f"m{n}", str(n))
        assert await mark_read(database, room, bob, 3) == 3
        assert await mark_read(database, room, bob, 2) == 3  # never backwards
        assert await mark_read(database, room, bob, 99) == 5  # not past the last message
        assert await mark_read(database, room, bob, 5) == 5
        await moderation.kick(database, room, ada, cy)
        with pytest.raises(NotMember):
            await mark_read(database, room, cy, 1)
        with pytest.raises(InvalidInput):
            await mark_read(database, room, bob, -1)


async def test_unread_counts_for_all_of_a_users_rooms_in_one_query(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, [ada, bob] = await lobby(database, "ada", "bob")
        quiet = (await create_room(database, ada, "quiet")).id
        await join(database, quiet, bob)
        busy = (await create_room(database, ada, "busy")).id
        await join(database, busy, bob)
        for n in range(1, 8):
            await append(database, busy, ada, f"m{n}", str(n))
        await append(database, room, ada, "for bob", "a")
        await append(database, room, bob, "bob's own", "b")  # not unread for bob
        await append(database, room, ada, "deleted", "c")
        await delete_message(database, room, 3, ada)  # deleted: not unread either
        await mark_read(database, busy, bob, 4)
        with telemetry.capture([QUERY_STOP]) as seen:
            counts = await unread_counts(database, bob)
        assert counts == {room: 1, quiet: 0, busy: 3}
        assert len(seen) == 1
        assert await unread_counts(database, ada) == {room: 1, quiet: 0, busy: 0}
        assert await unread_counts(database, 999) == {}


def test_mentions_are_the_usernames_after_an_at_sign() -> None:
    body = "@Ada and @bob.smith, see @ada. Mail ada@example.com, @@x, @me, @_no, @cy-"
    assert mentions(body) == ["ada", "bob.smith"]
    assert mentions("(@dan_1)\n@Eve-2!") == ["dan_1", "eve-2"]
    assert mentions("nobody here") == []
