"""The chat HTTP API's rooms, moderation, direct rooms, history, read markers and search:
each route's answer and who may use it; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from chat_api_helpers import chat_node

from trunkline import chat
from trunkline.otp import MockClock


@pytest.fixture(autouse=True)
def clock() -> MockClock:
    # Time moves only when a test jumps it (see chat_api_helpers).
    return MockClock(autojump=False)


async def test_rooms_create_list_page_join_leave(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        ada, bob = await api.user("ada"), await api.user("bob")
        lobby = await api.ok("POST", "/rooms", ada, json={"name": " lobby ", "topic": "say hello"})
        assert (lobby["name"], lobby["topic"], lobby["kind"]) == ("lobby", "say hello", "public")
        plans = await api.ok("POST", "/rooms", ada, json={"name": "plans", "kind": "private"})
        extra = [
            (await api.ok("POST", "/rooms", bob, json={"name": f"r{i}"}))["id"] for i in range(2)
        ]

        mine = (await api.ok("GET", "/rooms", ada))["rooms"]
        assert [(r["id"], r["unread"]) for r in mine] == [(lobby["id"], 0), (plans["id"], 0)]

        # Public rooms, two at a time: the private one is never listed.
        first = await api.ok("GET", "/rooms/public", bob, params={"limit": 2})
        assert [r["id"] for r in first["rooms"]] == [lobby["id"], extra[0]]
        second = await api.ok(
            "GET", "/rooms/public", bob, params={"limit": 2, "after": first["next_after"]}
        )
        assert [r["id"] for r in second["rooms"]] == [extra[1]]
        assert second["next_after"] is None
        bad = await api.error(400, "GET", "/rooms/public", bob, params={"limit": "many"})
        assert (bad["code"], bad["field"]) == ("invalid_input", "limit")
        zero = await api.error(400, "GET", "/rooms/public", bob, params={"limit": 0})
        assert zero["field"] == "limit"

        # An outsider sees a public room, not a private one (nor that it exists).
        seen = await api.ok("GET", f"/rooms/{lobby['id']}", bob)
        assert (seen["name"], seen["role"], seen["unread"]) == ("lobby", None, None)
        hidden = await api.error(404, "GET", f"/rooms/{plans['id']}", bob)
        assert (hidden["code"], hidden["what"]) == ("not_found", "room")
        assert (await api.error(404, "GET", "/rooms/999999", bob))["what"] == "room"

        joined = await api.ok("POST", f"/rooms/{lobby['id']}/join", bob)
        assert (joined["role"], joined["last_read_seq"], joined["unread"]) == ("member", 0, 0)
        uninvited = await api.error(403, "POST", f"/rooms/{plans['id']}/join", bob)
        assert (uninvited["code"], uninvited["reason"]) == ("forbidden", "join")

        members = (await api.ok("GET", f"/rooms/{lobby['id']}/members", bob))["members"]
        assert [(m["user"]["username"], m["role"]) for m in members] == [
            ("ada", "owner"),
            ("bob", "member"),
        ]

        # The owner leaves: the room passes to bob.
        left = await api.ok("POST", f"/rooms/{lobby['id']}/leave", ada)
        assert left["new_owner"]["username"] == "bob"
        assert (await api.ok("POST", f"/rooms/{lobby['id']}/leave", bob))["new_owner"] is None
        gone = await api.error(403, "POST", f"/rooms/{lobby['id']}/leave", bob)
        assert gone["code"] == "not_member"

        invalid = await api.error(400, "POST", "/rooms", ada, json={"name": ""})
        assert (invalid["field"], invalid["reason"]) == ("name", "too_short")
        kind = await api.error(400, "POST", "/rooms", ada, json={"name": "x", "kind": "secret"})
        assert kind["field"] == "kind"
        assert (await api.error(401, "POST", "/rooms", json={"name": "x"}))["code"] == (
            "unauthenticated"
        )


async def test_private_rooms_invites_and_direct_rooms(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        ada, bob, cat = await api.user("ada"), await api.user("bob"), await api.user("cat")
        plans = await api.ok("POST", "/rooms", ada, json={"name": "plans", "kind": "private"})
        room = f"/rooms/{plans['id']}"
        assert await api.ok("POST", f"{room}/invites", ada, json={"user": "BOB"}) is None
        assert (await api.ok("POST", f"{room}/join", bob))["role"] == "member"
        # A plain member does not invite to a private room; an unknown user is not found.
        refused = await api.error(403, "POST", f"{room}/invites", bob, json={"user": "cat"})
        assert (refused["code"], refused["reason"]) == ("forbidden", "invite")
        nobody = await api.error(404, "POST", f"{room}/invites", ada, json={"user": "nobody"})
        assert nobody["what"] == "user"
        assert (await api.error(404, "POST", f"{room}/invites", ada, json={"user": "!"}))[
            "what"
        ] == "user"
        outsider = await api.error(403, "POST", f"{room}/invites", cat, json={"user": "cat"})
        assert outsider["code"] == "not_member"

        # One direct room per pair, whichever way round.
        dm = await api.ok("POST", "/direct", ada, json={"user": "cat"})
        assert dm["kind"] == "direct"
        assert dm["name"] is None
        assert (await api.ok("POST", "/direct", cat, json={"user": "Ada"}))["id"] == dm["id"]
        assert (await api.ok("GET", f"/rooms/{dm['id']}", cat))["role"] == "member"
        assert (await api.error(404, "GET", f"/rooms/{dm['id']}", bob))["code"] == "not_found"
        myself = await api.error(400, "POST", "/direct", ada, json={"user": "ada"})
        assert (myself["field"], myself["reason"]) == ("user", "same_user")
        assert (await api.error(404, "POST", "/direct", ada, json={"user": "zed"}))[
            "what"
        ] == "user"
        assert (await api.error(403, "POST", f"/rooms/{dm['id']}/leave", ada))["reason"] == "leave"


async def test_moderation_and_roles(backend: str, tmp_path: Path, clock: MockClock) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        ada, bob, cat = await api.user("ada"), await api.user("bob"), await api.user("cat")
        lobby = await api.ok("POST", "/rooms", ada, json={"name": "lobby"})
        room = f"/rooms/{lobby['id']}"
        for token in (bob, cat):
            await api.ok("POST", f"{room}/join", token)

        # A member does not moderate.
        refused = await api.error(403, "POST", f"{room}/kick", bob, json={"user": "cat"})
        assert (refused["code"], refused["reason"]) == ("forbidden", "kick")
        refused = await api.error(
            403, "PUT", f"{room}/members/cat/role", bob, json={"role": "admin"}
        )
        assert refused["code"] == "forbidden"

        # The owner makes bob admin; bob kicks cat, who may come back.
        assert await api.ok("PUT", f"{room}/members/bob/role", ada, json={"role": "admin"}) is None
        assert await api.ok("POST", f"{room}/kick", bob, json={"user": "cat"}) is None
        await api.ok("POST", f"{room}/join", cat)

        # Banned for an hour: out, and refused on rejoining until the hour is over.
        until = (clock.now() + timedelta(hours=1)).isoformat()
        assert (
            await api.ok("POST", f"{room}/ban", bob, json={"user": "cat", "until": until}) is None
        )
        banned = await api.error(403, "POST", f"{room}/join", cat)
        assert banned["code"] == "banned"
        assert banned["until"].startswith(until[:19])
        history = await api.error(403, "GET", f"{room}/messages", cat)
        assert history["code"] == "not_member"
        clock.jump(3601)
        await api.ok("POST", f"{room}/join", cat)

        # Banned without end, then unbanned.
        await api.ok("POST", f"{room}/ban", ada, json={"user": "cat"})
        assert "until" not in await api.error(403, "POST", f"{room}/join", cat)
        await api.ok("POST", f"{room}/unban", ada, json={"user": "cat"})
        await api.ok("POST", f"{room}/join", cat)

        # Muted: shown in the member list, refused on sending, lifted by unmute.
        await api.ok("POST", f"{room}/mute", ada, json={"user": "cat"})
        members = (await api.ok("GET", f"{room}/members", cat))["members"]
        assert {m["user"]["username"]: m["muted"] for m in members} == {
            "ada": False,
            "bob": False,
            "cat": True,
        }
        cat_id = (await api.ok("GET", "/me", cat))["user"]["id"]
        with pytest.raises(chat.Muted):
            await chat.append(context.require_database(), lobby["id"], cat_id, "hi", "c-1")
        await api.ok("POST", f"{room}/unmute", ada, json={"user": "cat"})
        members = (await api.ok("GET", f"{room}/members", cat))["members"]
        assert not any(m["muted"] for m in members)

        # Nobody acts on the owner; an end only for ban and mute, and in the future.
        owner = await api.error(403, "POST", f"{room}/ban", bob, json={"user": "ada"})
        assert owner["code"] == "forbidden"
        no_end = await api.error(
            400, "POST", f"{room}/kick", ada, json={"user": "cat", "until": until}
        )
        assert (no_end["field"], no_end["reason"]) == ("until", "not_allowed")
        past = (clock.now() - timedelta(minutes=1)).isoformat()
        in_past = await api.error(
            400, "POST", f"{room}/mute", ada, json={"user": "cat", "until": past}
        )
        assert (in_past["field"], in_past["reason"]) == ("until", "in_past")
        naive = await api.error(
            400, "POST", f"{room}/mute", ada, json={"user": "cat", "until": "2030-01-01T00:00:00"}
        )
        assert naive["field"] == "until"
        role = await api.error(400, "PUT", f"{room}/members/cat/role", ada, json={"role": "owner"})
        assert role["field"] == "role"
        # cat is still a plain, unmuted member after all the refusals.
        members = (await api.ok("GET", f"{room}/members", cat))["members"]
        assert [(m["user"]["username"], m["role"], m["muted"]) for m in members][-1] == (
            "cat",
            "member",
            False,
        )


async def test_history_read_markers_unread_and_search(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        database = context.require_database()
        ada, bob, cat = await api.user("ada"), await api.user("bob"), await api.user("cat")
        lobby = await api.ok("POST", "/rooms", ada, json={"name": "lobby"})
        other = await api.ok("POST", "/rooms", cat, json={"name": "elsewhere"})
        room = f"/rooms/{lobby['id']}"
        await api.ok("POST", f"{room}/join", bob)
        me = await api.ok("GET", "/me", ada)
        for i in range(1, 6):
            await chat.append(
                database, lobby["id"], me["user"]["id"], f"note {i} quick fox", f"c{i}"
            )
        cat_id = (await api.ok("GET", "/me", cat))["user"]["id"]
        await chat.append(database, other["id"], cat_id, "quick fox elsewhere", "c1")

        latest = (await api.ok("GET", f"{room}/messages", bob, params={"limit": 2}))["messages"]
        assert [m["seq"] for m in latest] == [4, 5]
        assert latest[0]["sender"]["username"] == "ada"
        before = await api.ok("GET", f"{room}/messages", bob, params={"before": 4, "limit": 2})
        assert [m["seq"] for m in before["messages"]] == [2, 3]
        after = await api.ok("GET", f"{room}/messages", bob, params={"after": 3})
        assert [m["body"] for m in after["messages"]] == ["note 4 quick fox", "note 5 quick fox"]
        bad = await api.error(400, "GET", f"{room}/messages", bob, params={"before": "-1"})
        assert (bad["field"], bad["reason"]) == ("before", "wrong_type")
        outsider = await api.error(403, "GET", f"{room}/messages", cat)
        assert outsider["code"] == "not_member"
        assert (await api.error(404, "GET", "/rooms/424242/messages", cat))["what"] == "room"

        assert (await api.ok("GET", "/unread", bob)) == {
            "rooms": [{"room_id": lobby["id"], "unread": 5}],
            "total": 5,
        }
        marker = await api.ok("PUT", f"{room}/read", bob, json={"seq": 3})
        assert marker == {"room_id": lobby["id"], "last_read_seq": 3, "unread": 2}
        # Never backwards, never past the last message.
        assert (await api.ok("PUT", f"{room}/read", bob, json={"seq": 1}))["last_read_seq"] == 3
        assert (await api.ok("PUT", f"{room}/read", bob, json={"seq": 99}))["unread"] == 0
        negative = await api.error(400, "PUT", f"{room}/read", bob, json={"seq": -1})
        assert negative["field"] == "seq"
        assert (await api.error(403, "PUT", f"{room}/read", cat, json={"seq": 1}))[
            "code"
        ] == "not_member"
        assert (await api.ok("GET", "/rooms", bob))["rooms"][0]["unread"] == 0

        # Search finds only in the rooms one belongs to.
        found = (await api.ok("GET", "/search", bob, params={"q": "quick fox"}))["messages"]
        assert [m["seq"] for m in found] == [5, 4, 3, 2, 1]
        assert {m["room_id"] for m in found} == {lobby["id"]}
        cats = (await api.ok("GET", "/search", cat, params={"q": "fox"}))["messages"]
        assert [m["body"] for m in cats] == ["quick fox elsewhere"]
        scoped = await api.ok("GET", "/search", bob, params={"q": "note 2", "room": lobby["id"]})
        assert [m["seq"] for m in scoped["messages"]] == [2]
        limited = await api.ok("GET", "/search", bob, params={"q": "fox", "limit": 2})
        assert len(limited["messages"]) == 2
        not_mine = await api.error(
            403, "GET", "/search", bob, params={"q": "fox", "room": other["id"]}
        )
        assert not_mine["code"] == "not_member"
        missing = await api.error(400, "GET", "/search", bob)
        assert (missing["field"], missing["reason"]) == ("q", "missing")
        too_long = await api.error(400, "GET", "/search", bob, params={"q": "x" * 5000})
        assert too_long["field"] == "q"
