"""The chat HTTP API's accounts: registering, logging in and out, devices, bearer tokens,
the login rate limit, and the shape of its errors; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_api_helpers import PASSWORD, chat_node

from trunkline import chat, db
from trunkline.otp import MockClock

_USERNAMES = db.Query("test.usernames", "SELECT username FROM chat_users ORDER BY id")


@pytest.fixture(autouse=True)
def clock() -> MockClock:
    # Time moves only when a test jumps it (see chat_api_helpers).
    return MockClock(autojump=False)


async def test_register_log_in_me_devices_and_log_out(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        ada = await api.ok(
            "POST",
            "/accounts",
            json={"username": "Ada", "password": PASSWORD, "display_name": " Ada Lovelace "},
        )
        assert ada["username"] == "ada"
        assert ada["display_name"] == "Ada Lovelace"
        assert "password" not in str(ada)

        response = await api.call(
            "POST",
            "/sessions",
            json={"username": "ADA", "password": PASSWORD, "device_name": "laptop"},
            headers={"User-Agent": "tests/1.0"},
        )
        assert response.status == 201
        session = await response.json()
        laptop = session["token"]
        assert session["user"]["id"] == ada["id"]
        assert session["device"]["name"] == "laptop"
        assert session["device"]["user_agent"] == "tests/1.0"
        assert session["device"]["address"] == "127.0.0.1"
        assert session["device"]["current"] is True
        phone = await api.login("ada", device_name="phone")

        me = await api.ok("GET", "/me", laptop)
        assert me["user"]["username"] == "ada"
        assert me["device"]["name"] == "laptop"

        devices = (await api.ok("GET", "/devices", phone))["devices"]
        assert [(d["name"], d["current"]) for d in devices] == [
            ("laptop", False),
            ("phone", True),
        ]

        # Revoking the laptop from the phone ends the laptop's token, not the phone's.
        assert await api.ok("DELETE", f"/devices/{devices[0]['id']}", phone) is None
        error = await api.error(401, "GET", "/me", laptop)
        assert (error["code"], error["reason"], error["retry"]) == (
            "unauthenticated",
            "revoked",
            False,
        )
        assert 'error="invalid_token"' in error["_headers"]["WWW-Authenticate"]
        assert [d["name"] for d in (await api.ok("GET", "/devices", phone))["devices"]] == ["phone"]

        # Logging out revokes this token; the next request with it is refused.
        assert await api.ok("DELETE", "/sessions/current", phone) is None
        error = await api.error(401, "GET", "/devices", phone)
        assert error["reason"] == "revoked"
        assert (await api.error(401, "DELETE", "/sessions/current", phone))["reason"] == "revoked"
        assert await chat.list_devices(context.require_database(), ada["id"]) == []


async def test_another_users_device_is_not_found(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        ada = await api.user("ada")
        bob = await api.user("bob")
        [ada_laptop] = (await api.ok("GET", "/devices", ada))["devices"]
        error = await api.error(404, "DELETE", f"/devices/{ada_laptop['id']}", bob)
        assert (error["code"], error["what"]) == ("not_found", "device")
        assert await api.error(404, "DELETE", f"/devices/{10**30}", bob)
        # Ada's device still works.
        assert (await api.ok("GET", "/me", ada))["user"]["username"] == "ada"


async def test_tokens_missing_invalid_and_expired(
    backend: str, tmp_path: Path, clock: MockClock
) -> None:
    async with chat_node(backend, tmp_path, chat={"token_ttl_s": 3600}) as (_, api):
        token = await api.user("ada")
        missing = await api.error(401, "GET", "/me")
        assert (missing["code"], missing["reason"]) == ("unauthenticated", "missing")
        assert missing["_headers"]["WWW-Authenticate"] == 'Bearer realm="trunkline"'
        basic = await api.error(401, "GET", "/rooms", headers={"Authorization": "Basic eDp5"})
        assert basic["reason"] == "missing"
        unknown = await api.error(401, "GET", "/me", "not-a-token")
        assert unknown["reason"] == "unknown"
        assert unknown["request_id"]

        # The TTL of the settings: used within the hour, the token lives on (sliding).
        clock.jump(3000)
        assert (await api.ok("GET", "/me", token))["user"]["username"] == "ada"
        clock.jump(3000)
        assert (await api.ok("GET", "/me", token))["user"]["username"] == "ada"
        clock.jump(3601)
        assert (await api.error(401, "GET", "/me", token))["reason"] == "expired"


async def test_registration_errors(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        await api.register("ada")
        taken = await api.error(
            409,
            "POST",
            "/accounts",
            json={
                "username": "\uff21\uff24\uff21",
                "password": PASSWORD,
                "display_name": "Other",
            },  # full-width ADA
        )
        assert (taken["code"], taken["field"], taken["retry"]) == (
            "username_taken",
            "username",
            False,
        )
        short = await api.error(
            400,
            "POST",
            "/accounts",
            json={"username": "bob", "password": "short", "display_name": "Bob"},
        )
        assert (short["code"], short["field"], short["reason"]) == (
            "invalid_input",
            "password",
            "too_short",
        )
        reserved = await api.error(
            400,
            "POST",
            "/accounts",
            json={"username": "admin", "password": PASSWORD, "display_name": "Root"},
        )
        assert (reserved["field"], reserved["reason"]) == ("username", "reserved")
        missing = await api.error(
            400, "POST", "/accounts", json={"username": "bob", "password": PASSWORD}
        )
        assert (missing["code"], missing["field"]) == ("invalid_input", "display_name")
        wrong_type = await api.error(
            400,
            "POST",
            "/accounts",
            json={"username": 7, "password": PASSWORD, "display_name": "Bob"},
        )
        assert wrong_type["field"] == "username"
        not_json = await api.error(
            400,
            "POST",
            "/accounts",
            data=b"{nope",
            headers={"Content-Type": "application/json"},
        )
        assert (not_json["code"], not_json["retry"]) == ("invalid_request", False)
        # None of them made an account: only ada logs in.
        rows = await context.require_database().fetch(_USERNAMES)
        assert [row[0] for row in rows] == ["ada"]


async def test_login_failures_are_limited_with_retry_after(
    backend: str, tmp_path: Path, clock: MockClock
) -> None:
    limits = {"login_max_failures_per_account": 3, "login_window_s": 600}
    async with chat_node(backend, tmp_path, chat=limits) as (_, api):
        await api.register("ada")
        wrong = {"username": "ada", "password": "not the password"}
        for _ in range(3):
            error = await api.error(401, "POST", "/sessions", json=wrong)
            assert (error["code"], error["retry"]) == ("invalid_credentials", False)
        # Past the limit even the right password is refused, before it is checked.
        right = {"username": "ada", "password": PASSWORD}
        limited = await api.error(429, "POST", "/sessions", json=right)
        assert (limited["code"], limited["retry"], limited["reason"]) == (
            "too_many_attempts",
            True,
            "account",
        )
        assert 0 < limited["retry_after_s"] <= 600
        assert int(limited["_headers"]["Retry-After"]) == 600
        # An unknown account fails like a wrong password, and is limited on its own.
        ghost = await api.error(401, "POST", "/sessions", json={**right, "username": "ghost"})
        assert ghost["code"] == "invalid_credentials"

        clock.jump(601)
        session = await api.ok("POST", "/sessions", json=right)
        assert session["user"]["username"] == "ada"
