"""What the tests of rooms, messages and search share: a database migrated with the rooms
schema, users made by a plain insert (no password hashing on the way), and a database that
refuses a chosen body (for what happens when a store fails)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from chat_backends import Backend

from trunkline import chat, db, otp
from trunkline.chat.messages import append
from trunkline.chat.rooms import create_room

__all__ = ["add_users", "migrated_below", "refuse_bodies", "rooms_database", "rooms_databases"]


@asynccontextmanager
async def rooms_databases(backend: Backend, count: int) -> AsyncIterator[Sequence[db.Database]]:
    """``count`` connections to one fresh database with the chat schema."""
    async with backend.databases(count, migrate=False) as databases:
        await databases[0].migrate({chat.COMPONENT: chat.MIGRATIONS})
        yield databases


@asynccontextmanager
async def rooms_database(backend: Backend) -> AsyncIterator[db.Database]:
    async with rooms_databases(backend, 1) as [database]:
        yield database


@asynccontextmanager
async def migrated_below(
    backend: Backend, version: int
) -> AsyncIterator[tuple[db.Database, int, int]]:
    """A database with the chat migrations below ``version`` only, a user and a room, and a
    message stored there: the database, the user, the room."""
    async with backend.database(migrate=False) as database:
        before = [m for m in chat.MIGRATIONS if m.version < version]
        await database.migrate({chat.COMPONENT: before})
        [ada] = await add_users(database, "ada")
        room = (await create_room(database, ada, "lobby")).id
        await append(database, room, ada, "an old heron", "1")
        yield database, ada, room


async def add_users(database: db.Database, *names: str) -> list[int]:
    """Insert users named ``names``; their ids, in order."""
    ids = []
    for name in names:
        user_id = await database.fetch_val(
            "INSERT INTO chat_users (username, display_name, password_hash, created_at) "
            "VALUES ($1, $2, 'x', $3) RETURNING id",
            name,
            name.title(),
            otp.current_node().clock.now(),
        )
        ids.append(user_id)
    return ids


async def refuse_bodies(database: db.Database, body: str) -> None:
    """Make the database refuse to store a message whose body is ``body`` (a trigger)."""
    if database.dialect == "sqlite":
        await database.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON chat_messages "
            f"WHEN new.body = '{body}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        return
    await database.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.body = '{body}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
    )
    await database.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON chat_messages "
        "FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
