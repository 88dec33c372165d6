"""GET /api/v1/invites: the rooms a user was invited to and has not joined, with who invited
them; joining or a ban takes the invitation away. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_api_helpers import chat_node

from trunkline.otp import MockClock


@pytest.fixture(autouse=True)
def clock() -> MockClock:
    return MockClock(autojump=False)


async def test_invitations_listed_until_used_or_banned(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        ada, bob, cyd = await api.user("ada"), await api.user("bob"), await api.user("cyd")
        assert await api.ok("GET", "/invites", bob) == {"invites": []}
        plans = await api.ok("POST", "/rooms", ada, json={"name": "plans", "kind": "private"})
        lobby = await api.ok("POST", "/rooms", ada, json={"name": "lobby"})
        for room in (plans, lobby):
            await api.ok("POST", f"/rooms/{room['id']}/invites", ada, json={"user": "bob"})
            await api.ok("POST", f"/rooms/{room['id']}/invites", ada, json={"user": "cyd"})

        invites = (await api.ok("GET", "/invites", bob))["invites"]
        assert [i["room"]["id"] for i in invites] == [plans["id"], lobby["id"]]
        first = invites[0]
        assert (first["room"]["name"], first["room"]["kind"]) == ("plans", "private")
        assert (first["invited_by"]["username"], first["invited_by"]["id"]) == ("ada", 1)
        assert first["invited_at"].endswith(("Z", "+00:00"))
        # Invitations are the invitee's own: ada, who invited, has none.
        assert await api.ok("GET", "/invites", ada) == {"invites": []}

        # Joining uses the invitation; a ban takes it away.
        await api.ok("POST", f"/rooms/{plans['id']}/join", bob)
        await api.ok("POST", f"/rooms/{lobby['id']}/ban", ada, json={"user": "cyd"})
        left = (await api.ok("GET", "/invites", bob))["invites"]
        assert [i["room"]["id"] for i in left] == [lobby["id"]]
        assert [i["room"]["id"] for i in (await api.ok("GET", "/invites", cyd))["invites"]] == [
            plans["id"]
        ]


async def test_invitations_need_a_token(backend: str, tmp_path: Path) -> None:
    async with chat_node(backend, tmp_path) as (_, api):
        error = await api.error(401, "GET", "/invites")
        assert error["code"] == "unauthenticated"
