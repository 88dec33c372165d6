"""Accounts on both backends: register, log in, authenticate, log out, devices, limits."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import argon2
import pytest
from argon2 import profiles
from chat_backends import Backend

from trunkline import chat, db, otp
from trunkline.chat import (
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    LoginLimiter,
    NotFound,
    Passwords,
    TooManyAttempts,
    UsernameTaken,
)

CHEAP = Passwords(profiles.CHEAPEST)
PASSWORD = "correct horse battery"


async def register(database: db.Queryable, username: str = "ada") -> chat.User:
    return await chat.register(database, username, PASSWORD, username.title(), passwords=CHEAP)


async def login(database: db.Queryable, username: str = "ada", **options: object) -> chat.Login:
    options.setdefault("passwords", CHEAP)
    return await chat.login(database, username, PASSWORD, **options)  # type: ignore[arg-type]


async def count(database: db.Database, table: str) -> int:
    return int(await database.fetch_val(f"SELECT count(*) FROM {table}"))


async def fail(database: db.Queryable, username: str = "ada", **options: object) -> None:
    """A login with a wrong password, which must fail as such."""
    options.setdefault("passwords", CHEAP)
    with pytest.raises(InvalidCredentials):
        await chat.login(database, username, "wrong password", **options)  # type: ignore[arg-type]


class CountingPasswords(Passwords):
    """Cheap, and counts the verifications (a dummy one included)."""

    def __init__(self) -> None:
        super().__init__(profiles.CHEAPEST)
        self.verified = 0

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return await super().verify(password_hash, password)


# -- register --------------------------------------------------------------------------------


async def test_register_stores_the_normalized_username_and_a_hash(backend: Backend) -> None:
    async with backend.database() as database:
        user = await chat.register(
            database, "\uff21da", PASSWORD, "  Ada Lovelace ", passwords=CHEAP
        )
        assert (user.username, user.display_name) == ("ada", "Ada Lovelace")
        assert user.created_at == otp.current_node().clock.now()
        row = await database.fetch_one("SELECT * FROM chat_users")
        assert row is not None
        assert (row.id, row.username) == (user.id, "ada")
        assert row.password_hash.startswith("$argon2id$")
        assert await CHEAP.verify(row.password_hash, PASSWORD)
        assert await chat.get_user(database, user.id) == user


async def test_a_username_is_taken_whatever_its_case_or_width(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database, "ada")
        for same in ("ada", "ADA", "\uff41\uff44\uff41"):
            with pytest.raises(UsernameTaken) as raised:
                await chat.register(database, same, PASSWORD, "Other", passwords=CHEAP)
            assert raised.value.username == "ada"
        assert await count(database, "chat_users") == 1


async def test_concurrent_registrations_of_one_name_have_one_winner(backend: Backend) -> None:
    contenders = 4
    barrier = asyncio.Barrier(contenders)

    class Gated(Passwords):
        # Every registration is past its "is it taken?" check before any inserts: the
        # unique constraint alone decides.
        async def hash(self, password: str) -> str:
            password_hash = await super().hash(password)
            await barrier.wait()
            return password_hash

    gated = Gated(profiles.CHEAPEST)
    async with backend.databases(2) as nodes:
        outcomes = await asyncio.gather(
            *(
                chat.register(nodes[i % 2], "ada", PASSWORD, f"Ada {i}", passwords=gated)
                for i in range(contenders)
            ),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, chat.User)]
        assert len(winners) == 1
        assert all(isinstance(o, UsernameTaken) for o in outcomes if o is not winners[0])
        rows = await nodes[0].fetch("SELECT display_name FROM chat_users")
        assert [row.display_name for row in rows] == [winners[0].display_name]


async def test_a_taken_name_leaves_the_callers_transaction_usable(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database, "ada")
        async with database.transaction() as tx:
            with pytest.raises(UsernameTaken):
                await register(tx, "ada")
            await register(tx, "grace")
        assert await count(database, "chat_users") == 2


@pytest.mark.parametrize(
    ("username", "password", "display_name", "field", "code"),
    [
        ("ab", PASSWORD, "Ab", "username", "too_short"),
        ("a" * 33, PASSWORD, "A", "username", "too_long"),
        ("ada lovelace", PASSWORD, "Ada", "username", "invalid_characters"),
        ("root", PASSWORD, "Root", "username", "reserved"),
        ("ada", "short", "Ada", "password", "too_short"),
        ("ada", "x" * 1025, "Ada", "password", "too_long"),
        ("ada", PASSWORD, "", "display_name", "too_short"),
        ("ada", PASSWORD, "x" * 65, "display_name", "too_long"),
        ("ada", PASSWORD, "Ada\x07", "display_name", "control_characters"),
    ],
)
async def test_invalid_input_is_refused_per_field_and_writes_nothing(
    backend: Backend, username: str, password: str, display_name: str, field: str, code: str
) -> None:
    async with backend.database() as database:
        with pytest.raises(InvalidInput) as raised:
            await chat.register(database, username, password, display_name, passwords=CHEAP)
        assert (raised.value.field, raised.value.code) == (field, code)
        assert await count(database, "chat_users") == 0


async def test_an_unknown_user_id_is_not_found(backend: Backend) -> None:
    async with backend.database() as database:
        with pytest.raises(NotFound) as raised:
            await chat.get_user(database, 42)
        assert (raised.value.what, raised.value.key) == ("user", 42)


async def test_the_default_parameters_register_and_log_in(backend: Backend) -> None:
    async with backend.database() as database:
        user = await chat.register(database, "ada", PASSWORD, "Ada")
        password_hash = await database.fetch_val("SELECT password_hash FROM chat_users")
        assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        result = await chat.login(database, "Ada", PASSWORD)
        assert result.user == user
        assert await database.fetch_val("SELECT password_hash FROM chat_users") == password_hash


# -- login and authenticate ------------------------------------------------------------------


async def test_login_opens_a_device_that_authenticates(backend: Backend) -> None:
    clock = otp.current_node().clock
    async with backend.database() as database:
        user = await register(database)
        result = await chat.login(
            database,
            "ADA",
            PASSWORD,
            device_name="laptop",
            address="203.0.113.7",
            user_agent="Mozilla/5.0 " + "x" * 1000,
            passwords=CHEAP,
        )
        assert result.user == user
        device = result.device
        assert (device.user_id, device.name, device.address) == (user.id, "laptop", "203.0.113.7")
        assert device.user_agent == ("Mozilla/5.0 " + "x" * 1000)[:512]
        assert device.created_at == device.last_seen_at == clock.now()
        assert device.expires_at == clock.now() + timedelta(days=30)
        assert device.revoked_at is None
        assert device.is_active(clock.now())
        assert len(result.token) >= 43
        assert await chat.authenticate(database, result.token) == (user, device)


async def test_the_token_is_stored_only_as_its_sha256(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        result = await login(database, device_name="laptop")
        rows = await database.fetch("SELECT * FROM chat_devices")
        assert len(rows) == 1
        assert all(result.token not in str(value) for value in rows[0].values())
        assert rows[0].token_hash == hashlib.sha256(result.token.encode()).hexdigest()


async def test_each_login_is_a_device_of_its_own(backend: Backend) -> None:
    async with backend.database() as database:
        user = await register(database)
        first = await login(database, device_name="laptop")
        second = await login(database, device_name="phone")
        assert first.token != second.token
        assert first.device.id != second.device.id
        assert (await chat.authenticate(database, first.token)).device.name == "laptop"
        assert (await chat.authenticate(database, second.token)).device.name == "phone"
        assert [d.name for d in await chat.list_devices(database, user.id)] == [
            "laptop",
            "phone",
        ]


async def test_a_wrong_password_and_an_unknown_user_fail_alike(backend: Backend) -> None:
    counting = CountingPasswords()
    async with backend.database() as database:
        await register(database)
        errors = []
        for username, password in [
            ("ada", "wrong password"),
            ("grace", PASSWORD),
            ("no such name!", PASSWORD),
        ]:
            with pytest.raises(InvalidCredentials) as raised:
                await chat.login(database, username, password, passwords=counting)
            errors.append((type(raised.value), str(raised.value)))
        assert len(set(errors)) == 1
        # A password was verified each time: against a stand-in hash when there is no
        # account, so that the answer takes as long.
        assert counting.verified == 3
        assert await count(database, "chat_devices") == 0


async def test_a_bad_device_name_is_refused_before_anything_is_checked(backend: Backend) -> None:
    counting = CountingPasswords()
    async with backend.database() as database:
        await register(database)
        with pytest.raises(InvalidInput) as raised:
            await chat.login(database, "ada", PASSWORD, device_name="a\nb", passwords=counting)
        assert raised.value.field == "device_name"
        assert counting.verified == 0
        assert await count(database, "chat_devices") == 0


async def test_login_refuses_arguments_of_the_wrong_kind(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        with pytest.raises(InvalidInput) as raised:
            await chat.login(database, "ada", None, passwords=CHEAP)  # type: ignore[arg-type]
        assert (raised.value.field, raised.value.code) == ("password", "wrong_type")
        with pytest.raises(InvalidInput) as raised:
            await login(database, address=7)
        assert (raised.value.field, raised.value.code) == ("address", "wrong_type")
        with pytest.raises(ValueError, match="token_ttl_s"):
            await login(database, token_ttl_s=0)
        assert await count(database, "chat_devices") == 0


@pytest.mark.parametrize("token", ["", "x" * 43, "x" * 10_000, None, 42])
async def test_authenticate_refuses_what_is_not_a_token_of_ours(
    backend: Backend, token: object
) -> None:
    async with backend.database() as database:
        await register(database)
        await login(database)
        with pytest.raises(InvalidToken) as raised:
            await chat.authenticate(database, token)  # type: ignore[arg-type]
        assert raised.value.reason == "unknown"


async def test_a_token_expires_after_its_ttl_without_use(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        result = await login(database, token_ttl_s=3600)
        await asyncio.sleep(3599)
        await chat.authenticate(database, result.token, sliding=False)
        await asyncio.sleep(1)
        with pytest.raises(InvalidToken) as raised:
            await chat.authenticate(database, result.token)
        assert raised.value.reason == "expired"
        assert await chat.list_devices(database, result.user.id) == []
        assert len(await chat.list_devices(database, result.user.id, include_inactive=True)) == 1


async def test_use_slides_the_expiry_and_notes_when_the_device_was_seen(backend: Backend) -> None:
    clock = otp.current_node().clock
    async with backend.database() as database:
        await register(database)
        result = await login(database, token_ttl_s=3600)
        for _ in range(3):  # two hours in all: more than the one-hour ttl
            await asyncio.sleep(2400)
            _, device = await chat.authenticate(database, result.token, token_ttl_s=3600)
            assert device.last_seen_at == clock.now()
            assert device.expires_at == clock.now() + timedelta(hours=1)
        stored = (await chat.list_devices(database, result.user.id))[0]
        assert stored == device
        await asyncio.sleep(3600)
        with pytest.raises(InvalidToken) as raised:
            await chat.authenticate(database, result.token, token_ttl_s=3600)
        assert raised.value.reason == "expired"


async def test_authenticate_writes_at_most_once_per_touch_interval(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        result = await login(database)
        await asyncio.sleep(59)
        _, device = await chat.authenticate(database, result.token)
        assert device == result.device  # not written
        await asyncio.sleep(1)
        _, device = await chat.authenticate(database, result.token)
        assert device.last_seen_at == result.device.last_seen_at + timedelta(seconds=60)
        _, again = await chat.authenticate(database, result.token, touch_interval_s=0)
        assert again.last_seen_at == device.last_seen_at


async def test_without_sliding_use_does_not_extend_the_expiry(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        result = await login(database, token_ttl_s=3600)
        await asyncio.sleep(3000)
        _, device = await chat.authenticate(database, result.token, sliding=False)
        assert device.expires_at == result.device.expires_at
        assert device.last_seen_at > result.device.last_seen_at
        await asyncio.sleep(600)
        with pytest.raises(InvalidToken):
            await chat.authenticate(database, result.token, sliding=False)


async def test_a_changed_parameter_set_rehashes_the_password_at_login(backend: Backend) -> None:
    stronger = Passwords(argon2.Parameters(argon2.Type.ID, 19, 16, 16, 2, 64, 1))
    async with backend.database() as database:
        await register(database)
        old_hash = await database.fetch_val("SELECT password_hash FROM chat_users")
        with pytest.raises(InvalidCredentials):
            await chat.login(database, "ada", "wrong password", passwords=stronger)
        assert await database.fetch_val("SELECT password_hash FROM chat_users") == old_hash
        await chat.login(database, "ada", PASSWORD, passwords=stronger)
        new_hash = await database.fetch_val("SELECT password_hash FROM chat_users")
        assert new_hash != old_hash
        assert not stronger.needs_rehash(new_hash)
        assert new_hash.startswith("$argon2id$v=19$m=64,t=2,p=1$")
        await chat.login(database, "ada", PASSWORD, passwords=stronger)
        assert await database.fetch_val("SELECT password_hash FROM chat_users") == new_hash


# -- logout and devices ----------------------------------------------------------------------


async def test_logout_revokes_that_device_only(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        laptop = await login(database, device_name="laptop")
        phone = await login(database, device_name="phone")
        await chat.logout(database, laptop.token)
        with pytest.raises(InvalidToken) as raised:
            await chat.authenticate(database, laptop.token)
        assert raised.value.reason == "revoked"
        await chat.authenticate(database, phone.token)
        devices = await chat.list_devices(database, laptop.user.id)
        assert [d.name for d in devices] == ["phone"]
        everything = await chat.list_devices(database, laptop.user.id, include_inactive=True)
        assert [d.revoked_at is not None for d in everything] == [True, False]


async def test_logout_of_a_token_that_does_not_work_says_why(backend: Backend) -> None:
    async with backend.database() as database:
        await register(database)
        revoked = await login(database)
        expiring = await login(database, token_ttl_s=60)
        await chat.logout(database, revoked.token)
        await asyncio.sleep(60)
        for token, reason in [
            (revoked.token, "revoked"),
            (expiring.token, "expired"),
            ("no such token", "unknown"),
        ]:
            with pytest.raises(InvalidToken) as raised:
                await chat.logout(database, token)
            assert raised.value.reason == reason


async def test_a_user_revokes_their_own_devices_only(backend: Backend) -> None:
    async with backend.database() as database:
        ada = await register(database, "ada")
        await register(database, "grace")
        adas = await login(database, "ada")
        graces = await login(database, "grace")
        with pytest.raises(NotFound) as raised:
            await chat.revoke_device(database, ada.id, graces.device.id)
        assert (raised.value.what, raised.value.key) == ("device", graces.device.id)
        await chat.authenticate(database, graces.token)  # untouched
        with pytest.raises(NotFound):
            await chat.revoke_device(database, ada.id, 10_000)
        revoked = await chat.revoke_device(database, ada.id, adas.device.id)
        assert revoked.revoked_at == otp.current_node().clock.now()
        with pytest.raises(InvalidToken):
            await chat.authenticate(database, adas.token)
        await asyncio.sleep(5)
        again = await chat.revoke_device(database, ada.id, adas.device.id)
        assert again.revoked_at == revoked.revoked_at  # the first revocation stands


async def test_a_deleted_user_takes_their_devices_along(backend: Backend) -> None:
    async with backend.database() as database:
        user = await register(database)
        result = await login(database)
        await database.execute("DELETE FROM chat_users WHERE id = $1", user.id)
        assert await count(database, "chat_devices") == 0
        with pytest.raises(InvalidToken):
            await chat.authenticate(database, result.token)


# -- rate limits -----------------------------------------------------------------------------


async def test_an_account_is_locked_after_failures_then_unlocked_by_time(backend: Backend) -> None:
    limiter = LoginLimiter(max_failures_per_account=3, window_s=900)
    counting = CountingPasswords()
    async with backend.database() as database:
        await register(database)
        for _ in range(3):
            await fail(database, limiter=limiter)
        with pytest.raises(TooManyAttempts) as raised:
            await chat.login(database, "ADA", PASSWORD, limiter=limiter, passwords=counting)
        assert raised.value.scope == "account"
        assert 0 < raised.value.retry_after_s <= 900
        assert counting.verified == 0  # refused before any password was checked
        await asyncio.sleep(raised.value.retry_after_s)
        await chat.login(database, "ada", PASSWORD, limiter=limiter, passwords=CHEAP)


async def test_a_success_resets_the_accounts_failures(backend: Backend) -> None:
    limiter = LoginLimiter(max_failures_per_account=3, window_s=900)
    async with backend.database() as database:
        await register(database)
        for _ in range(2):
            await fail(database, limiter=limiter)
        await login(database, limiter=limiter)
        for _ in range(3):  # three more failures allowed, not one
            await fail(database, limiter=limiter)
        with pytest.raises(TooManyAttempts):
            await login(database, limiter=limiter)


async def test_unknown_accounts_are_limited_like_known_ones(backend: Backend) -> None:
    limiter = LoginLimiter(max_failures_per_account=2, window_s=900)
    async with backend.database() as database:
        for _ in range(2):
            await fail(database, "nobody", limiter=limiter)
        with pytest.raises(TooManyAttempts):
            await chat.login(database, "nobody", PASSWORD, limiter=limiter, passwords=CHEAP)


async def test_an_address_is_limited_across_accounts(backend: Backend) -> None:
    limiter = LoginLimiter(max_failures_per_account=100, max_failures_per_address=3, window_s=60)
    async with backend.database() as database:
        await register(database)
        for name in ("grace", "edsger", "barbara"):
            await fail(database, name, address="203.0.113.7", limiter=limiter)
        with pytest.raises(TooManyAttempts) as raised:
            await login(database, address="203.0.113.7", limiter=limiter)
        assert raised.value.scope == "address"
        assert raised.value.retry_after_s == pytest.approx(60, abs=1)
        await login(database, address="198.51.100.1", limiter=limiter)
        await asyncio.sleep(raised.value.retry_after_s)
        await login(database, address="203.0.113.7", limiter=limiter)


async def test_logins_emit_telemetry(backend: Backend) -> None:
    limiter = LoginLimiter(max_failures_per_account=1)
    async with backend.database() as database:
        user = await register(database)
        with otp.telemetry.capture([chat.LOGIN_EVENT]) as seen:
            await login(database, address="203.0.113.7", limiter=limiter)
            await fail(database, limiter=limiter)
            with pytest.raises(TooManyAttempts):
                await login(database, limiter=limiter)
        assert [e.metadata["result"] for e in seen] == [
            "ok",
            "invalid_credentials",
            "too_many_attempts",
        ]
        assert seen[0].metadata == {"result": "ok", "address": "203.0.113.7", "user_id": user.id}
        assert all(e.measurements["duration"] >= 0 for e in seen)
