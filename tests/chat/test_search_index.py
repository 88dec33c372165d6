"""SQLite's search index, kept up to date in batches after messages are stored: what waits is
indexed by a search and by the chat tree's indexer, edits and deletions of indexed messages
replace their terms, a reused id is indexed at once, the index is merged as it is written
(not by FTS5 on its own), the migrations carry the messages indexed before them, and the
indexer outlives a failing database."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, migrated_below, rooms_database
from test_room_server import running

from statement_waits import eventually
from trunkline import chat, db, otp
from trunkline.chat import room_server
from trunkline.chat.messages import append, delete_message, edit_message
from trunkline.chat.rooms import create_room
from trunkline.chat.search import search
from trunkline.chat.search_index import CHUNK, SearchIndexer, catch_up

INDEXED = "SELECT indexed_upto FROM chat_search_progress"
LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM chat_messages"
# FTS5's own tables: its settings, and a row per leaf page of each segment of the index.
AUTOMERGE = "SELECT v FROM chat_messages_fts_config WHERE k = 'automerge'"
SEGMENTS = "SELECT COUNT(DISTINCT segid) FROM chat_messages_fts_idx"


async def in_index(database: db.Database, word: str) -> list[int]:
    """The ids the FTS5 index itself holds for ``word`` (not the content table)."""
    rows = await database.fetch(
        "SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH $1 ORDER BY rowid",
        word,
    )
    return [row[0] for row in rows]


async def seqs(database: db.Database, user: int, query: str) -> list[int]:
    return [message.seq for message in await search(database, user, query)]


@pytest.fixture
def sqlite(tmp_path: Path) -> Backend:
    """For what only SQLite has (PostgreSQL indexes each body in the statement storing it)."""
    return Backend("sqlite", tmp_path)


async def test_messages_wait_to_be_indexed_and_a_search_indexes_them_first(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        for n in range(3):
            await append(database, room, ada, f"otter number {n}", str(n))
        assert await in_index(database, "otter") == []
        assert await seqs(database, ada, "otter") == [3, 2, 1]
        assert len(await in_index(database, "otter")) == 3
        assert await database.fetch_val(INDEXED) == await database.fetch_val(LAST_ID)
        assert await catch_up(database) == 0  # nothing left


async def test_a_catch_up_indexes_everything_a_chunk_at_a_time(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        for n in range(CHUNK + 5):
            await append(database, room, ada, f"heron {n}", str(n))
        assert await catch_up(database) == CHUNK + 5
        assert len(await in_index(database, "heron")) == CHUNK + 5
        assert await database.fetch_val(INDEXED) == await database.fetch_val(LAST_ID)


async def test_a_paced_catch_up_indexes_as_much(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        for n in range(2 * CHUNK + 5):
            await append(database, room, ada, f"heron {n}", str(n))
        assert await catch_up(database, paced=True) == 2 * CHUNK + 5
        assert len(await in_index(database, "heron")) == 2 * CHUNK + 5
        assert await database.fetch_val(INDEXED) == await database.fetch_val(LAST_ID)


async def test_each_chunk_merges_the_index_which_does_not_merge_itself(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        assert await database.fetch_val(AUTOMERGE) == 0
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        segments = []
        for n in range(64):  # a chunk (and a segment) each
            await append(database, room, ada, f"heron {n}", str(n))
            await catch_up(database)
            segments.append(await database.fetch_val(SEGMENTS))
        # Merged four at a time as they come (FTS5's usermerge); unmerged, up to 15 wait.
        assert max(segments) <= 4
        assert len(await in_index(database, "heron")) == 64
        await database.execute(
            "INSERT INTO chat_messages_fts (chat_messages_fts) VALUES ('integrity-check')"
        )


async def test_edits_and_deletions_of_indexed_messages_replace_their_terms(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        await append(database, room, ada, "a grey heron", "1")
        await append(database, room, ada, "a white egret", "2")
        assert await seqs(database, ada, "heron") == [1]  # now indexed
        await edit_message(database, room, 1, ada, "a blue kingfisher")
        await delete_message(database, room, 2, ada)
        assert await seqs(database, ada, "heron") == []
        assert await seqs(database, ada, "kingfisher") == [1]
        assert await seqs(database, ada, "egret") == []
        if backend.name == "sqlite":
            assert await in_index(database, "heron") == []
            assert await in_index(database, "egret") == []


async def test_a_message_edited_before_it_is_indexed_is_indexed_as_edited(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        await append(database, room, ada, "a grey heron", "1")
        await edit_message(database, room, 1, ada, "a blue kingfisher")
        assert await catch_up(database) == 1
        assert await in_index(database, "heron") == []
        assert len(await in_index(database, "kingfisher")) == 1


async def test_an_id_reused_after_a_deletion_is_indexed_at_once(sqlite: Backend) -> None:
    async with rooms_database(sqlite) as database:
        [ada] = await add_users(database, "ada")
        kept = (await create_room(database, ada, "kept")).id
        dropped = (await create_room(database, ada, "dropped")).id
        await append(database, kept, ada, "first words", "1")
        last = await append(database, dropped, ada, "last words", "2")
        assert await catch_up(database) == 2
        await database.execute("DELETE FROM chat_rooms WHERE id = $1", dropped)  # cascades
        assert await in_index(database, "last") == []
        reused = await append(database, kept, ada, "reused words", "3")
        assert reused.id == last.id  # SQLite gave the deleted row's id again
        assert await in_index(database, "reused") == [reused.id]  # no catch-up needed
        assert await seqs(database, ada, "words") == [2, 1]


async def test_a_search_in_a_transaction_indexes_in_it(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        async with database.transaction() as tx:
            await append(tx, room, ada, "a quiet otter", "1")
            assert [m.seq for m in await search(tx, ada, "otter")] == [1]
        assert await seqs(database, ada, "otter") == [1]


async def test_the_migration_keeps_what_was_indexed_before_it(sqlite: Backend) -> None:
    async with migrated_below(sqlite, 3) as (database, ada, room):  # indexed by the old trigger
        await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
        assert await database.fetch_val(INDEXED) == await database.fetch_val(LAST_ID)
        await append(database, room, ada, "a new heron", "2")
        assert await catch_up(database) == 1
        assert await seqs(database, ada, "heron") == [2, 1]
        await edit_message(database, room, 1, ada, "an old egret")
        assert await seqs(database, ada, "heron") == [2]


async def test_the_merging_migration_keeps_the_index(sqlite: Backend) -> None:
    async with migrated_below(sqlite, 4) as (database, ada, room):
        await catch_up(database)
        await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
        assert await database.fetch_val(AUTOMERGE) == 0
        await append(database, room, ada, "a new heron", "2")
        assert await catch_up(database) == 1
        assert await seqs(database, ada, "heron") == [2, 1]


async def test_the_chat_tree_indexes_new_messages_on_its_interval(sqlite: Backend) -> None:
    async with (
        sqlite.database() as database,
        running(database, search_index_interval_s=5.0) as tree,
    ):
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        message = await room_server.send(tree, room, ada, "a patient heron", "1")
        assert await in_index(database, "heron") == []

        async def indexed() -> bool:
            return await in_index(database, "heron") == [message.id]

        await eventually(indexed, "the indexer indexed the message")


async def test_the_indexer_outlives_a_database_that_fails(
    sqlite: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async with sqlite.database() as database:
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        await append(database, room, ada, "a patient heron", "1")
        # Every round fails while the table has another name (its triggers follow it).
        await database.execute("ALTER TABLE chat_search_progress RENAME TO away")
        indexer = await SearchIndexer.start_link((database, 5.0))

        async def logged() -> bool:
            return any("could not index" in record.message for record in caplog.records)

        try:
            await eventually(logged, "the indexer logged the failure")
            assert otp.is_alive(indexer)
            await database.execute("ALTER TABLE away RENAME TO chat_search_progress")

            async def indexed() -> bool:
                return len(await in_index(database, "heron")) == 1

            await eventually(indexed, "the indexer indexed the message once the table was back")
        finally:
            otp.unlink(indexer)
            await otp.stop(indexer)
