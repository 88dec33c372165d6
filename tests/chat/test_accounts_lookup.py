"""Looking accounts up by username and by many ids at once, on both backends."""

from __future__ import annotations

import pytest
from argon2 import profiles
from chat_backends import Backend

from trunkline import chat, db, otp
from trunkline.chat import NotFound, Passwords
from trunkline.chat.accounts import get_user_by_name, get_users

CHEAP = Passwords(profiles.CHEAPEST)


async def register(database: db.Queryable, username: str) -> chat.User:
    return await chat.register(
        database, username, "correct horse battery", username.title(), passwords=CHEAP
    )


async def test_a_user_is_found_by_username_as_normalized_at_registration(
    backend: Backend,
) -> None:
    async with backend.database() as database:
        ada = await register(database, "ada")
        await register(database, "bob")
        for spelling in ("ada", "ADA", "\uff21da"):
            assert await get_user_by_name(database, spelling) == ada


@pytest.mark.parametrize("username", ["nobody", "", "not a name", "x" * 1000])
async def test_no_account_is_not_found_whatever_the_name(backend: Backend, username: str) -> None:
    async with backend.database() as database:
        await register(database, "ada")
        with pytest.raises(NotFound) as raised:
            await get_user_by_name(database, username)
        assert (raised.value.what, raised.value.key) == ("user", username)


async def test_many_users_by_id_in_one_query(backend: Backend) -> None:
    async with backend.database() as database:
        users = [await register(database, f"user{i}") for i in range(5)]
        wanted = [users[3].id, users[0].id, users[3].id, 999_999, 2**63, -(2**64)]
        with otp.telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
            found = await get_users(database, iter(wanted))
        assert found == {users[0].id: users[0], users[3].id: users[3]}
        assert [s.metadata["statement"] for s in statements] == ["chat.accounts.users_by_ids"]


async def test_no_ids_ask_nothing_of_the_database(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database, "ada")
        with otp.telemetry.capture([(*db.QUERY_EVENT, "stop")]) as statements:
            assert await get_users(database, []) == {}
            assert await get_users(database, [2**63]) == {}
        assert statements == []


async def test_thousands_of_ids_fit_in_the_one_query(backend: Backend) -> None:
    async with backend.database() as database:
        ada = await register(database, "ada")
        # More ids than SQLite allows parameters in one statement.
        found = await get_users(database, range(ada.id, ada.id + 40_000))
        assert found == {ada.id: ada}
