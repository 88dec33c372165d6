"""Rooms on both backends: create, direct rooms, join, invite, leave, roles, moderation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from chat_backends import Backend
from rooms_helpers import add_users, rooms_database, rooms_databases

from trunkline import db
from trunkline.chat import moderation
from trunkline.chat.exceptions import (
    Banned,
    Forbidden,
    InvalidInput,
    NotFound,
    NotMember,
)
from trunkline.chat.rooms import (
    Role,
    RoomKind,
    create_room,
    get_room,
    invite,
    join,
    leave,
    member,
    members,
    open_direct,
    public_rooms,
    require_member,
    user_rooms,
)


async def count(database: db.Database, table: str) -> int:
    value = await database.fetch_val(f"SELECT count(*) FROM {table}")
    assert isinstance(value, int)
    return value


async def roles(database: db.Database, room_id: int) -> dict[int, Role]:
    return {m.user_id: m.role for m in await members(database, room_id)}


async def test_a_room_is_created_with_its_creator_as_owner(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        [ada] = await add_users(database, "ada")
        room = await create_room(database, ada, "  Lobby  ", topic=" hello ")
        assert (room.kind, room.name, room.topic, room.created_by) == (
            RoomKind.PUBLIC,
            "Lobby",
            "hello",
            ada,
        )
        assert await get_room(database, room.id) == room
        assert await roles(database, room.id) == {ada: Role.OWNER}
        secret = await create_room(database, ada, "secret", private=True)
        assert secret.kind is RoomKind.PRIVATE
        with pytest.raises(NotFound):
            await get_room(database, secret.id + 100)


@pytest.mark.parametrize(
    ("name", "topic", "field"),
    [("", "", "name"), ("x" * 65, "", "name"), ("a\nb", "", "name"), ("ok", "t" * 501, "topic")],
)
async def test_bad_names_and_topics_store_nothing(
    backend: Backend, name: str, topic: str, field: str
) -> None:
    async with rooms_database(backend) as database:
        [ada] = await add_users(database, "ada")
        with pytest.raises(InvalidInput) as raised:
            await create_room(database, ada, name, topic=topic)
        assert raised.value.field == field
        assert await count(database, "chat_rooms") == 0


async def test_a_room_needs_an_existing_creator(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        with pytest.raises(NotFound):
            await create_room(database, 999, "lobby")
        assert await count(database, "chat_rooms") == 0


async def test_listing_public_rooms_and_a_users_rooms(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob = await add_users(database, "ada", "bob")
        one = await create_room(database, ada, "one")
        await create_room(database, ada, "hidden", private=True)
        two = await create_room(database, bob, "two")
        direct = await open_direct(database, ada, bob)
        assert [r.id for r in await public_rooms(database)] == [one.id, two.id]
        assert [r.id for r in await public_rooms(database, limit=1)] == [one.id]
        assert [r.id for r in await public_rooms(database, after_id=one.id)] == [two.id]
        assert [r.name for r in await user_rooms(database, ada)] == ["one", "hidden", None]
        assert [r.id for r in await user_rooms(database, bob)] == [two.id, direct.id]
        with pytest.raises(InvalidInput):
            await public_rooms(database, limit=0)


async def test_a_direct_room_is_one_per_pair_whichever_way_round(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob, cy = await add_users(database, "ada", "bob", "cy")
        room = await open_direct(database, ada, bob)
        assert room.kind is RoomKind.DIRECT
        assert room.name is None
        assert await open_direct(database, bob, ada) == room
        assert await roles(database, room.id) == {ada: Role.MEMBER, bob: Role.MEMBER}
        assert (await open_direct(database, ada, cy)).id != room.id
        with pytest.raises(InvalidInput):
            await open_direct(database, ada, ada)
        with pytest.raises(NotFound):
            await open_direct(database, ada, 999)
        # Nobody joins, is invited to, leaves or moderates a direct room.
        with pytest.raises(Forbidden):
            await join(database, room.id, cy)
        with pytest.raises(Forbidden):
            await invite(database, room.id, ada, cy)
        with pytest.raises(Forbidden):
            await leave(database, room.id, ada)
        with pytest.raises(Forbidden):
            await moderation.kick(database, room.id, ada, bob)


async def test_racing_nodes_open_one_direct_room(backend: Backend) -> None:
    async with rooms_databases(backend, 2) as databases:
        ada, bob = await add_users(databases[0], "ada", "bob")
        opened = await asyncio.gather(
            *(
                open_direct(databases[i % 2], *((ada, bob) if i % 3 else (bob, ada)))
                for i in range(12)
            )
        )
        assert len({room.id for room in opened}) == 1
        assert await count(databases[0], "chat_rooms") == 1
        assert await count(databases[0], "chat_room_members") == 2


async def test_racing_joins_make_one_membership(backend: Backend) -> None:
    async with rooms_databases(backend, 2) as databases:
        ada, bob = await add_users(databases[0], "ada", "bob")
        room = await create_room(databases[0], ada, "lobby")
        joined = await asyncio.gather(*(join(databases[i % 2], room.id, bob) for i in range(10)))
        assert {(m.user_id, m.role) for m in joined} == {(bob, Role.MEMBER)}
        assert await count(databases[0], "chat_room_members") == 2


async def test_anyone_joins_a_public_room_once(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob = await add_users(database, "ada", "bob")
        room = await create_room(database, ada, "lobby")
        joined = await join(database, room.id, bob)
        assert (joined.role, joined.last_read_seq) == (Role.MEMBER, 0)
        assert await join(database, room.id, bob) == joined
        assert await roles(database, room.id) == {ada: Role.OWNER, bob: Role.MEMBER}
        with pytest.raises(NotFound):
            await join(database, room.id + 100, bob)
        with pytest.raises(NotFound):
            await join(database, room.id, 999)


async def test_a_private_room_is_joined_by_invitation_from_owners_and_admins(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        ada, bob, cy, dan = await add_users(database, "ada", "bob", "cy", "dan")
        room = await create_room(database, ada, "secret", private=True)
        with pytest.raises(Forbidden) as refused:
            await join(database, room.id, bob)
        assert refused.value.action == "join"
        with pytest.raises(NotMember):
            await invite(database, room.id, cy, bob)  # cy is not in the room
        await invite(database, room.id, ada, bob)
        await join(database, room.id, bob)
        assert await count(database, "chat_room_invites") == 0  # the invitation is used
        with pytest.raises(Forbidden):
            await invite(database, room.id, bob, cy)  # a plain member
        await moderation.set_role(database, room.id, ada, bob, Role.ADMIN)
        await invite(database, room.id, bob, cy)
        await invite(database, room.id, bob, cy)  # twice: one invitation
        assert await count(database, "chat_room_invites") == 1
        await join(database, room.id, cy)
        with pytest.raises(NotFound):
            await invite(database, room.id, ada, 999)
        # In a public room any member invites.
        lobby = await create_room(database, ada, "lobby")
        await join(database, lobby.id, cy)
        await invite(database, lobby.id, cy, dan)
        assert await member(database, lobby.id, dan) is None


async def test_an_owner_who_leaves_hands_over_to_the_first_admin_else_the_first_member(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        ada, bob, cy, dan = await add_users(database, "ada", "bob", "cy", "dan")
        room = await create_room(database, ada, "lobby")
        for user in (bob, cy, dan):
            await join(database, room.id, user)
            await asyncio.sleep(1)  # distinct join times
        await moderation.set_role(database, room.id, ada, dan, Role.ADMIN)
        assert await leave(database, room.id, bob) is None  # a member: nothing passes
        assert await leave(database, room.id, ada) == dan  # the admin, though cy came first
        assert await roles(database, room.id) == {cy: Role.MEMBER, dan: Role.OWNER}
        assert await leave(database, room.id, dan) == cy  # no admin left: the first member
        assert await leave(database, room.id, cy) is None  # the last one
        assert await members(database, room.id) == []
        assert (await get_room(database, room.id)).name == "lobby"
        with pytest.raises(NotMember):
            await leave(database, room.id, cy)
        with pytest.raises(NotMember):
            await require_member(database, room.id, cy)
        with pytest.raises(NotFound):
            await require_member(database, room.id + 100, cy)


Action = Callable[[db.Database, int, int, int], Awaitable[object]]


async def _kick(database: db.Database, room: int, by: int, user: int) -> object:
    await moderation.kick(database, room, by, user)
    assert await member(database, room, user) is None
    return await join(database, room, user)  # undo


async def _ban(database: db.Database, room: int, by: int, user: int) -> object:
    await moderation.ban(database, room, by, user)
    with pytest.raises(Banned):
        await join(database, room, user)
    await moderation.unban(database, room, by, user)
    return await join(database, room, user)  # undo


async def _mute(database: db.Database, room: int, by: int, user: int) -> object:
    await moderation.mute(database, room, by, user)
    muted = await member(database, room, user)
    assert muted is not None
    assert muted.muted
    assert muted.muted_until is None
    await moderation.unmute(database, room, by, user)  # undo
    unmuted = await member(database, room, user)
    assert unmuted is not None
    return unmuted.muted


@pytest.mark.parametrize("action", [_kick, _ban, _mute], ids=["kick", "ban", "mute"])
async def test_who_may_moderate_whom(backend: Backend, action: Action) -> None:
    async with rooms_database(backend) as database:
        names = ["owner", "admin1", "admin2", "member1", "member2", "outsider"]
        owner, admin1, admin2, member1, member2, outsider = await add_users(database, *names)
        room = await create_room(database, owner, "lobby")
        for user in (admin1, admin2, member1, member2):
            await join(database, room.id, user)
        for admin in (admin1, admin2):
            await moderation.set_role(database, room.id, owner, admin, Role.ADMIN)
        before = await roles(database, room.id)
        allowed = [(owner, admin1), (owner, member1), (admin1, member1), (admin2, member2)]
        forbidden = [
            (member1, member2),  # plain members do not moderate
            (member1, admin1),
            (admin1, admin2),  # an admin does not act on another admin
            (admin1, owner),  # nobody acts on the owner
            (admin1, admin1),  # nor on themselves
            (owner, owner),
        ]
        for by, user in forbidden:
            with pytest.raises(Forbidden):
                await action(database, room.id, by, user)
        for by, user in allowed:
            await action(database, room.id, by, user)
            if before[user] is Role.ADMIN:  # rejoined as a plain member
                await moderation.set_role(database, room.id, owner, user, Role.ADMIN)
        with pytest.raises(NotMember):
            await action(database, room.id, outsider, member1)
        with pytest.raises(NotFound):
            await action(database, room.id + 100, owner, member1)
        assert await roles(database, room.id) == before
        assert await count(database, "chat_room_bans") == 0


async def test_kick_and_mute_need_a_member_to_act_on(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob = await add_users(database, "ada", "bob")
        room = await create_room(database, ada, "lobby")
        with pytest.raises(NotMember):
            await moderation.kick(database, room.id, ada, bob)
        with pytest.raises(NotMember):
            await moderation.mute(database, room.id, ada, bob)
        with pytest.raises(NotFound):
            await moderation.ban(database, room.id, ada, 999)


async def test_a_banned_user_cannot_rejoin_or_be_invited_until_the_ban_ends(
    backend: Backend,
) -> None:
    async with rooms_database(backend) as database:
        ada, bob, cy = await add_users(database, "ada", "bob", "cy")
        room = await create_room(database, ada, "lobby")
        await join(database, room.id, bob)
        await moderation.ban(database, room.id, ada, bob, duration_s=60)
        assert await member(database, room.id, bob) is None
        with pytest.raises(Banned) as raised:
            await join(database, room.id, bob)
        assert raised.value.until is not None
        with pytest.raises(Banned):
            await invite(database, room.id, ada, bob)
        # A non-member can be banned ahead of a join, for good.
        await moderation.ban(database, room.id, ada, cy)
        await asyncio.sleep(61)
        await join(database, room.id, bob)  # the ban has ended
        with pytest.raises(Banned) as forever:
            await join(database, room.id, cy)
        assert forever.value.until is None
        assert await moderation.unban(database, room.id, ada, cy) is True
        assert await moderation.unban(database, room.id, ada, cy) is False
        await join(database, room.id, cy)


async def test_a_ban_drops_the_invitation_to_a_private_room(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob = await add_users(database, "ada", "bob")
        room = await create_room(database, ada, "secret", private=True)
        await invite(database, room.id, ada, bob)
        await moderation.ban(database, room.id, ada, bob, duration_s=5)
        await asyncio.sleep(6)
        with pytest.raises(Forbidden):
            await join(database, room.id, bob)  # ban over, but no invitation left


@pytest.mark.parametrize("duration_s", [0, -1, float("inf"), float("nan"), True, "5"])
async def test_a_bad_duration_changes_nothing(backend: Backend, duration_s: object) -> None:
    async with rooms_database(backend) as database:
        ada, bob = await add_users(database, "ada", "bob")
        room = await create_room(database, ada, "lobby")
        await join(database, room.id, bob)
        with pytest.raises(InvalidInput):
            await moderation.ban(database, room.id, ada, bob, duration_s=duration_s)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await moderation.mute(database, room.id, ada, bob, duration_s=duration_s)  # type: ignore[arg-type]
        found = await member(database, room.id, bob)
        assert found is not None
        assert not found.muted


async def test_only_the_owner_sets_roles(backend: Backend) -> None:
    async with rooms_database(backend) as database:
        ada, bob, cy = await add_users(database, "ada", "bob", "cy")
        room = await create_room(database, ada, "lobby")
        await join(database, room.id, bob)
        await join(database, room.id, cy)
        await moderation.set_role(database, room.id, ada, bob, Role.ADMIN)
        with pytest.raises(Forbidden):
            await moderation.set_role(database, room.id, bob, cy, Role.ADMIN)
        with pytest.raises(InvalidInput):
            await moderation.set_role(database, room.id, ada, cy, Role.OWNER)
        await moderation.set_role(database, room.id, ada, bob, Role.MEMBER)
        assert await roles(database, room.id) == {
            ada: Role.OWNER,
            bob: Role.MEMBER,
            cy: Role.MEMBER,
        }
