"""The notification HTTP API of ``trunkline serve``: events sent by services with an API key
(idempotent, validated), the in-app inbox pushed live to sockets and read over HTTP, and a
user's preferences, settings, addresses and push subscriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serve_helpers import API_KEY, NodeClient, eventually, running_node

import pg
from trunkline import db

pytestmark = pytest.mark.real_clock

EVENTS = "/notifications/events"
KEY = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        pg.require_postgres()
    return str(request.param)


async def stored_events(node: NodeClient) -> int:
    database = node.context.require_database()
    return int(await database.fetch_val(db.Query("t.events", "SELECT count(*) FROM notify_events")))


async def test_events_need_an_api_key_and_repeat_idempotently(backend: str, tmp_path: Path) -> None:
    async with running_node(backend, tmp_path) as node:
        bob, bob_token = await node.user("bob")
        event = {"category": "chat.mention", "recipients": ["bob"], "payload": {"text": "hi"}}

        missing = await node.error(401, "POST", EVENTS, json=event)
        assert missing["code"] == "unauthenticated"
        # A user's token is not an API key: users cannot notify each other.
        assert (await node.error(401, "POST", EVENTS, bob_token, json=event))["reason"] == "unknown"

        headers = {**KEY, "Idempotency-Key": "order-1"}
        first = await node.call("POST", EVENTS, json=event, headers=headers)
        assert first.status == 201
        sent = await first.json()
        assert sent["duplicate"] is False
        assert {(d["user_id"], d["channel"], d["status"]) for d in sent["deliveries"]} >= {
            (bob, "inapp", "queued")
        }
        again = await node.call("POST", EVENTS, json=event, headers=headers)
        assert again.status == 200
        repeat = await again.json()
        assert repeat["event_id"] == sent["event_id"]
        assert repeat["duplicate"] is True
        assert repeat["deliveries"] == sent["deliveries"]
        assert await stored_events(node) == 1

        deliveries = await node.ok("GET", f"{EVENTS}/{sent['event_id']}/deliveries", headers=KEY)
        assert {d["channel"] for d in deliveries["deliveries"]} == {
            "inapp",
            "email",
            "webpush",
            "sms",
            "webhook",
        }
        await node.error(401, "GET", f"{EVENTS}/{sent['event_id']}/deliveries", bob_token)
        await node.error(404, "GET", f"{EVENTS}/999999/deliveries", headers=KEY)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "billing.nope", "recipients": ["bob"]}, "category"),
        ({"category": "chat.mention", "recipients": ["nobody"]}, "recipients"),
        ({"category": "chat.mention", "recipients": [987654]}, "recipients"),
        ({"category": "chat.mention", "recipients": []}, "recipients"),
        ({"category": "chat.mention", "recipients": ["bob"], "extra": 1}, "extra"),
        ({"category": "chat.mention", "recipients": ["bob"], "payload": [1]}, "payload"),
        ({"category": "chat.mention", "recipients": ["bob"], "send_at": "tomorrow"}, "send_at"),
        ({"category": "chat.mention", "recipients": ["bob"], "actor": "ghost"}, "actor"),
    ],
)
async def test_a_bad_event_is_400_and_stores_nothing(
    tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    async with running_node("sqlite", tmp_path) as node:
        await node.user("bob")
        error = await node.error(400, "POST", EVENTS, json=body, headers=KEY)
        assert error["code"] == "invalid_input"
        assert error["field"] == field, error
        assert await stored_events(node) == 0


async def test_a_node_without_api_keys_refuses_events_saying_why(tmp_path: Path) -> None:
    async with running_node("sqlite", tmp_path, api_keys=[]) as node:
        await node.user("bob")
        event = {"category": "chat.mention", "recipients": ["bob"]}
        error = await node.error(403, "POST", EVENTS, json=event, headers=KEY)
        assert error["reason"] == "no_api_keys"
        assert "notify.api_keys" in error["message"]


async def test_an_event_for_a_connected_user_is_pushed_and_read_over_the_api(
    backend: str, tmp_path: Path
) -> None:
    async with running_node(backend, tmp_path) as node:
        _, bob_token = await node.user("bob")
        socket = await node.socket(bob_token)
        event = {"category": "chat.mention", "recipients": ["bob"], "payload": {"text": "one"}}
        await node.ok("POST", EVENTS, json=event, headers=KEY)

        push = await socket.push("notification")
        assert push["unread"] == 1
        assert push["item"]["body"] == "one"
        assert push["item"]["read_at"] is None
        first = push["item"]["id"]

        inbox = await node.ok("GET", "/notifications", bob_token)
        assert inbox["unread"] == 1
        assert [item["id"] for item in inbox["items"]] == [first]
        assert await node.ok("GET", "/notifications/unread_count", bob_token) == {"unread": 1}
        assert await node.ok("POST", f"/notifications/{first}/read", bob_token) == {
            "marked": 1,
            "unread": 0,
        }

        for text in ("two", "three"):
            event = {**event, "payload": {"text": text}}
            await node.ok("POST", EVENTS, json=event, headers=KEY)
            pushed = await socket.push("notification")
            assert pushed["item"]["body"] == text
        assert pushed["unread"] == 2
        unread = await node.ok("GET", "/notifications", bob_token, params={"status": "unread"})
        assert [item["body"] for item in unread["items"]] == ["three", "two"]
        assert await node.ok("POST", "/notifications/read_all", bob_token) == {
            "marked": 2,
            "unread": 0,
        }
        assert await node.ok("POST", f"/notifications/{first}/archive", bob_token) == {
            "marked": 1,
            "unread": 0,
        }
        listed = await node.ok("GET", "/notifications", bob_token, params={"limit": 1})
        assert [item["body"] for item in listed["items"]] == ["three"]
        rest = await node.ok(
            "GET", "/notifications", bob_token, params={"limit": 1, "cursor": listed["next_cursor"]}
        )
        assert [item["body"] for item in rest["items"]] == ["two"]
        assert rest["next_cursor"] is None

        # Another user's item is no item of mine; a bad query is 400.
        _, eve_token = await node.user("eve")
        await node.error(404, "POST", f"/notifications/{first}/read", eve_token)
        await node.error(400, "GET", "/notifications", bob_token, params={"status": "new"})
        await node.error(401, "GET", "/notifications")

        async def delivered() -> bool:
            page = await node.ok("GET", "/notifications/deliveries", bob_token)
            inapp = [d for d in page["deliveries"] if d["channel"] == "inapp"]
            return len(inapp) == 3 and all(d["status"] == "read" for d in inapp)

        await eventually(delivered, "bob's in-app deliveries read")


async def test_preferences_settings_and_addresses_are_the_users_own(tmp_path: Path) -> None:
    async with running_node("sqlite", tmp_path) as node:
        _, token = await node.user("bob")
        prefs = "/notifications/preferences"
        choice = {"category": "chat.mention", "channel": "email", "enabled": False}
        after = await node.ok("PUT", prefs, token, json={"preferences": [choice]})
        found = {(p["category"], p["channel"]): p for p in after["preferences"]}
        assert found[("chat.mention", "email")] == {
            "category": "chat.mention",
            "channel": "email",
            "enabled": False,
            "default": True,
            "chosen": False,
        }
        assert found[("chat.mention", "sms")]["enabled"] is False
        # All or nothing: one unknown channel stores none of them.
        bad = [{**choice, "enabled": True}, {**choice, "channel": "pigeon"}]
        error = await node.error(400, "PUT", prefs, token, json={"preferences": bad})
        assert error["field"] == "preferences.1.channel"
        again = await node.ok("GET", prefs, token)
        assert {(p["category"], p["channel"]): p for p in again["preferences"]} == found

        settings = {
            "time_zone": "Europe/Paris",
            "locale": "fr",
            "quiet_hours": {"mon": ["22:00-24:00"]},
        }
        assert await node.ok("PUT", "/notifications/settings", token, json=settings) == settings
        await node.error(
            400, "PUT", "/notifications/settings", token, json={**settings, "time_zone": "Mars/X"}
        )
        await node.error(
            400,
            "PUT",
            "/notifications/settings",
            token,
            json={**settings, "quiet_hours": {"x": []}},
        )
        assert await node.ok("GET", "/notifications/settings", token) == settings

        address = "/notifications/addresses"
        await node.error(400, "PUT", f"{address}/email", token, json={"address": "not mail"})
        await node.error(400, "PUT", f"{address}/sms", token, json={"address": "12345"})
        assert await node.ok("PUT", f"{address}/sms", token, json={"address": "+14155550100"}) == {
            "channel": "sms",
            "address": "+14155550100",
        }
        await node.ok("DELETE", f"{address}/sms", token)
        await node.error(404, "DELETE", f"{address}/sms", token)
        await node.error(404, "PUT", f"{address}/inapp", token, json={"address": "x"})

        subs = "/notifications/push_subscriptions"
        sub = {"endpoint": "https://push.example/1", "keys": {"p256dh": "k", "auth": "a"}}
        added = await node.ok("POST", subs, token, json=sub)
        assert added["endpoint"] == sub["endpoint"]
        await node.error(400, "POST", subs, token, json={**sub, "endpoint": "http://plain"})
        _, eve_token = await node.user("eve")
        await node.error(404, "DELETE", subs, eve_token, json={"endpoint": sub["endpoint"]})
        await node.ok("DELETE", subs, token, json={"endpoint": sub["endpoint"]})

        # Web push is off on this node: no key to subscribe with.
        assert (await node.error(404, "GET", "/notifications/vapid_public_key"))["what"] == "key"


async def test_a_forged_unsubscribe_token_is_400_and_changes_nothing(tmp_path: Path) -> None:
    async with running_node("sqlite", tmp_path) as node:
        _, token = await node.user("bob")
        forged = "MTpjaGF0Lm1lbnRpb24.c2lnbmF0dXJl"  # "1:chat.mention", not signed by the node
        path = "/notifications/unsubscribe"
        error = await node.error(400, "POST", path, params={"token": forged})
        assert error["field"] == "token"
        page = await node.call("GET", path, params={"token": forged})
        assert page.status == 400
        assert "does not work" in await page.text()
        prefs = await node.ok("GET", "/notifications/preferences", token)
        assert all(p["chosen"] is None for p in prefs["preferences"])


async def test_web_push_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    push = {"subject": "mailto:ops@example.com"}
    async with running_node("sqlite", tmp_path, webpush=push) as node:
        first = await node.ok("GET", "/notifications/vapid_public_key")
    async with running_node("sqlite", tmp_path, webpush=push) as node:
        assert await node.ok("GET", "/notifications/vapid_public_key") == first
    assert len(first["public_key"]) == 87  # base64url of an uncompressed P-256 point


async def test_a_mention_of_an_offline_member_lands_in_their_inbox(tmp_path: Path) -> None:
    async with running_node("sqlite", tmp_path) as node:
        _, alice_token = await node.user("alice")
        _, bob_token = await node.user("bob")
        room = await node.ok("POST", "/rooms", alice_token, json={"name": "lobby"})
        await node.ok("POST", f"/rooms/{room['id']}/join", bob_token)
        alice = await node.socket(alice_token)
        seq = await node.send(alice, room["id"], "@bob have a look")

        async def arrived() -> bool:
            count = await node.ok("GET", "/notifications/unread_count", bob_token)
            return int(count["unread"]) == 1

        await eventually(arrived, "the mention in bob's inbox")
        item = (await node.ok("GET", "/notifications", bob_token))["items"][0]
        assert item["title"] == "Alice mentioned you in lobby"
        payload = item["data"]["payload"]
        assert (payload["room"], payload["seq"], payload["sender_name"]) == (
            room["id"],
            seq,
            "Alice",
        )
        assert payload["url"] == f"{node.base}/#/room/{room['id']}"
        # Alice, who sent it, is notified of nothing.
        assert (await node.ok("GET", "/notifications/unread_count", alice_token))["unread"] == 0
