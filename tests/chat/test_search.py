"""Search on both backends (SQLite FTS5, PostgreSQL full text): scoped to the user's rooms,
deleted messages left out, and no query a user types makes it fail."""

from __future__ import annotations

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, rooms_database

from trunkline import db
from trunkline.chat import moderation
from trunkline.chat.exceptions import InvalidInput, NotFound, NotMember
from trunkline.chat.messages import append, delete_message, edit_message
from trunkline.chat.rooms import create_room, join
from trunkline.chat.search import MAX_QUERY_CHARS, search

BODIES = [
    "The quick brown fox",
    "a brown dog, not quick",
    "Cats or dogs? I'd say CATS",
    "near the river",
    "fox-trot at noon",
]


async def setup(database: db.Database) -> tuple[int, int, list[int]]:
    """Ada and Bob in a lobby holding BODIES (seq 1..5); Cy in a room of her own."""
    ada, bob, cy = await add_users(database, "ada", "bob", "cy")
    room = (await create_room(database, ada, "lobby")).id
    await join(database, room, bob)
    for n, body in enumerate(BODIES, start=1):
        await append(database, room, (ada, bob)[n % 2], body, str(n))
    elsewhere = (await create_room(database, cy, "elsewhere")).id
    await append(database, elsewhere, cy, "the quick brown fox, elsewhere", "x")
    return room, elsewhere, [ada, bob, cy]


async def found(database: db.Database, user: int, query: str, **options: object) -> list[int]:
    return [m.seq for m in await search(database, user, query, **options)]  # type: ignore[arg-type]


async def test_search_finds_words_in_the_users_rooms_newest_first(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, elsewhere, [ada, bob, cy] = await setup(database)
        assert await found(database, ada, "quick") == [2, 1]
        assert await found(database, ada, "QUICK Brown") == [2, 1]  # all the words, any case
        assert await found(database, ada, '"quick brown"') == [1]  # in that order
        assert await found(database, ada, "brown -dog") == [1]
        assert await found(database, ada, "river or noon") == [5, 4]
        assert await found(database, ada, "fox") == [5, 1]
        assert await found(database, ada, "fox-trot") == [5]
        assert await found(database, ada, "elsewhere") == []  # not ada's room
        assert await found(database, cy, "quick") == [1]  # cy's own room's message
        assert [m.room_id for m in await search(database, cy, "quick")] == [elsewhere]
        assert await found(database, ada, "quick", limit=1) == [2]
        assert await found(database, bob, "quick", room_id=room) == [2, 1]
        with pytest.raises(NotMember):
            await search(database, ada, "quick", room_id=elsewhere)
        with pytest.raises(NotFound):
            await search(database, ada, "quick", room_id=elsewhere + 100)


async def test_a_member_who_leaves_no_longer_finds_the_rooms_messages(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, _, [ada, bob, _cy] = await setup(database)
        await moderation.ban(database, room, ada, bob)
        assert await found(database, bob, "quick") == []


async def test_deleted_messages_are_not_found_and_edits_are(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        room, _, [ada, bob, _cy] = await setup(database)
        await delete_message(database, room, 1, bob)  # bob sent seq 1
        assert await found(database, ada, "fox") == [5]
        await edit_message(database, room, 2, ada, "a brown wolf")
        assert await found(database, ada, "wolf") == [2]
        assert await found(database, ada, "dog") == []
        assert await found(database, ada, "quick") == []


HOSTILE = [
    '"',
    '""',
    '"""',
    "*",
    "quick*",
    "NEAR(",
    "NEAR(quick brown, 2)",
    "-",
    "--",
    "- -",
    "OR",
    "or or",
    "AND",
    "NOT",
    "quick NOT",
    "(",
    ")",
    "((quick",
    ":",
    "body:quick",
    "^quick",
    "'",
    "\\",
    "%",
    "_",
    "",
    "   ",
    "\x00",
    "quick\x00brown",
    '"unterminated quick',
    "{body}: quick",
    "quick + brown",
    "!quick & brown | <->",
    "émoji 🦊",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_no_query_makes_search_fail(backend: Backend, query: str) -> None:
    async with rooms_database(backend) as database:
        _, _, [ada, _bob, _cy] = await setup(database)
        results = await found(database, ada, query)
        assert set(results) <= {1, 2, 3, 4, 5}


async def test_punctuation_is_never_syntax(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        _, _, [ada, _bob, _cy] = await setup(database)
        assert await found(database, ada, "NEAR(") == [4]  # the word "near"
        assert await found(database, ada, '"or"') == [3]  # the word "or", quoted
        assert await found(database, ada, "quick*") == [2, 1]
        assert await found(database, ada, '"unterminated quick') == []
        assert await found(database, ada, '"quick brown') == [1]  # a quote left open
        assert await found(database, ada, "body:quick") == []  # "body quick" in order
        assert await found(database, ada, '"') == []
        assert await found(database, ada, "-quick") == []  # nothing left to look for
        assert await found(database, ada, "OR") == []


async def test_a_bad_query_is_refused(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        _, _, [ada, _bob, _cy] = await setup(database)
        with pytest.raises(InvalidInput):
            await search(database, ada, 42)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await search(database, ada, "x" * (MAX_QUERY_CHARS + 1))
        with pytest.raises(InvalidInput):
            await search(database, ada, "quick", limit=0)
