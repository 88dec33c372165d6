"""The chat HTTP API end to end (two users, from registering to logging out), and its
OpenAPI document; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chat_api_helpers import chat_node

from trunkline import chat
from trunkline.otp import MockClock
from trunkline.server import NodeContext, Settings, TrunklineNode
from trunkline.web.chat_api import add_chat_api


@pytest.fixture(autouse=True)
def clock() -> MockClock:
    # Time moves only when a test jumps it (see chat_api_helpers).
    return MockClock(autojump=False)


async def test_two_users_from_registering_to_logging_out(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        await api.register("ada", "Ada Lovelace")
        await api.register("bob", "Bob")
        ada = await api.login("ada")
        bob = await api.login("bob", device_name="phone")

        plans = await api.ok("POST", "/rooms", ada, json={"name": "plans", "kind": "private"})
        room = f"/rooms/{plans['id']}"
        assert (await api.error(403, "GET", f"{room}/messages", bob))["code"] == "not_member"
        await api.ok("POST", f"{room}/invites", ada, json={"user": "bob"})
        await api.ok("POST", f"{room}/join", bob)

        # Ada writes (through the service, as the room's process does for the socket).
        ada_id = (await api.ok("GET", "/me", ada))["user"]["id"]
        database = context.require_database()
        for n, text in enumerate(["hello bob", "the launch is at noon", "bring snacks"], 1):
            await chat.append(database, plans["id"], ada_id, text, f"a-{n}")

        history = (await api.ok("GET", f"{room}/messages", bob))["messages"]
        assert [(m["seq"], m["sender"]["username"], m["body"]) for m in history] == [
            (1, "ada", "hello bob"),
            (2, "ada", "the launch is at noon"),
            (3, "ada", "bring snacks"),
        ]
        assert (await api.ok("GET", "/unread", bob))["total"] == 3
        assert (await api.ok("GET", "/unread", ada))["total"] == 0  # one's own never count
        await api.ok("PUT", f"{room}/read", bob, json={"seq": 2})
        [mine] = (await api.ok("GET", "/rooms", bob))["rooms"]
        assert (mine["id"], mine["unread"]) == (plans["id"], 1)

        found = (await api.ok("GET", "/search", bob, params={"q": "launch"}))["messages"]
        assert [(m["room_id"], m["seq"]) for m in found] == [(plans["id"], 2)]

        await api.ok("DELETE", "/sessions/current", bob)
        assert (await api.error(401, "GET", "/unread", bob))["reason"] == "revoked"
        # Ada's session is untouched; bob logs in again on a new device.
        assert (await api.ok("GET", "/unread", ada))["total"] == 0
        again = await api.login("bob", device_name="tablet")
        assert (await api.ok("GET", "/unread", again))["total"] == 1


# Every route of the chat API: method, path (as the document spells it), status, tag.
ROUTES = {
    ("post", "/api/v1/accounts", "201", "accounts"),
    ("post", "/api/v1/sessions", "201", "accounts"),
    ("delete", "/api/v1/sessions/current", "204", "accounts"),
    ("get", "/api/v1/me", "200", "accounts"),
    ("get", "/api/v1/devices", "200", "accounts"),
    ("get", "/api/v1/users/{username}/presence", "200", "accounts"),
    ("delete", "/api/v1/devices/{device_id}", "204", "accounts"),
    ("post", "/api/v1/rooms", "201", "rooms"),
    ("get", "/api/v1/rooms", "200", "rooms"),
    ("get", "/api/v1/rooms/public", "200", "rooms"),
    ("get", "/api/v1/invites", "200", "rooms"),
    ("get", "/api/v1/rooms/{room_id}", "200", "rooms"),
    ("post", "/api/v1/rooms/{room_id}/join", "200", "rooms"),
    ("post", "/api/v1/rooms/{room_id}/leave", "200", "rooms"),
    ("post", "/api/v1/rooms/{room_id}/invites", "204", "rooms"),
    ("get", "/api/v1/rooms/{room_id}/members", "200", "rooms"),
    ("post", "/api/v1/direct", "200", "rooms"),
    ("post", "/api/v1/rooms/{room_id}/kick", "204", "moderation"),
    ("post", "/api/v1/rooms/{room_id}/ban", "204", "moderation"),
    ("post", "/api/v1/rooms/{room_id}/unban", "204", "moderation"),
    ("post", "/api/v1/rooms/{room_id}/mute", "204", "moderation"),
    ("post", "/api/v1/rooms/{room_id}/unmute", "204", "moderation"),
    ("put", "/api/v1/rooms/{room_id}/members/{username}/role", "204", "moderation"),
    ("get", "/api/v1/rooms/{room_id}/messages", "200", "messages"),
    ("put", "/api/v1/rooms/{room_id}/read", "200", "messages"),
    ("get", "/api/v1/unread", "200", "messages"),
    ("get", "/api/v1/search", "200", "messages"),
}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        found: dict[str, Any] = document["components"]["schemas"][name]
        return found
    return schema


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_openapi_document_lists_every_route_with_its_schemas(
    backend: str, tmp_path: Path
) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        response = await api.client.get("/openapi.json")
        document = await response.json()
    listed = {
        (method, path, next(s for s in op["responses"] if s[0] == "2"), tag)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in operations.items()
        for tag in op["tags"]
    }
    assert listed == ROUTES
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            where = f"{method} {path}"
            success = next(s for s in op["responses"] if s[0] == "2")
            if success != "204":
                schema = op["responses"][success]["content"]["application/json"]["schema"]
                assert _resolve(document, schema)["properties"], where
            if method in ("post", "put") and not path.endswith(("/join", "/leave")):
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                assert _resolve(document, schema)["properties"], where
            errors = [s for s in op["responses"] if s.startswith("4")]
            assert errors, where
            for status in errors:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ChatErrorBody"}, where
            if "requestBody" in op:
                assert {"400", "413", "415"} <= set(errors), where
            if path not in ("/api/v1/accounts", "/api/v1/sessions"):
                assert "401" in op["responses"], where
    error = document["components"]["schemas"]["ChatErrorDetail"]
    assert "retry" in error["required"]
    assert {"field", "reason", "retry_after_s", "until", "what"} <= set(error["properties"])
    session = document["components"]["schemas"]["SessionOut"]
    assert set(session["required"]) == {"token", "user", "device"}


def test_a_node_serves_the_chat_api() -> None:
    context = NodeContext(Settings())
    TrunklineNode(context)
    assert context.web_hooks.count(add_chat_api) == 1
    assert chat.COMPONENT in context.migrations
