"""Helpers of the chat HTTP API's tests: a node's app on a migrated database of either
backend, served on a real socket, and a client that speaks the API.

Passwords are hashed with argon2's cheapest parameters (the context's ``passwords``), so a
registration or a login costs well under a millisecond. The tests run on a ``MockClock``
without autojump: time moves only when a test calls ``clock.jump`` (to expire a token or
empty a rate-limit window), so no timer of aiohttp's fires in the middle of a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import profiles

import pg
from trunkline import db
from trunkline.chat import Passwords
from trunkline.server import NodeContext, Settings
from trunkline.web import make_app
from trunkline.web.chat_api import add_chat_api

__all__ = ["CHEAP", "PASSWORD", "ChatClient", "chat_node"]

CHEAP = Passwords(profiles.CHEAPEST)
PASSWORD = "correct horse battery"


@asynccontextmanager
async def _database(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, db.Database]]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat-api.db'}"
        database = await db.connect(url)
        try:
            yield url, database
        finally:
            await database.close()
        return
    async with pg.postgres_schema(1, pg.POSTGRES_URL, command_timeout_s=0) as [database]:
        yield pg.POSTGRES_URL, database


@asynccontextmanager
async def chat_node(
    backend: str, tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[NodeContext, ChatClient]]:
    """A node context with the chat API's hook, on a fresh migrated database of
    ``backend``, and a client of its app."""
    async with _database(backend, tmp_path) as (url, database):
        context = NodeContext(
            Settings.model_validate({"database": url, **settings}),
            web_hooks=[add_chat_api],
            passwords=CHEAP,
        )
        await database.migrate(context.migrations)
        context.database = database
        async with TestClient(TestServer(make_app(context), host="127.0.0.1", port=0)) as client:
            yield context, ChatClient(client)


class ChatClient:
    """A client of the API: requests with an optional bearer token, and shortcuts."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ClientResponse:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return await self.client.request(
            method, "/api/v1" + path, json=json, data=data, params=params, headers=sent
        )

    async def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        """The JSON of a successful answer (None for 204); fails the test otherwise."""
        response = await self.call(method, path, token, **kw)
        text = await response.text()
        assert response.status < 300, f"{method} {path}: {response.status} {text}"
        return None if response.status == 204 else await response.json()

    async def error(
        self, status: int, method: str, path: str, token: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """The error object of an answer that must have ``status``."""
        response = await self.call(method, path, token, **kw)
        body = await response.json()
        assert response.status == status, f"{method} {path}: {response.status} {body}"
        assert isinstance(body["error"]["retry"], bool)
        error: dict[str, Any] = body["error"]
        error["_headers"] = dict(response.headers)
        return error

    async def register(self, username: str, display_name: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = await self.ok(
            "POST",
            "/accounts",
            json={
                "username": username,
                "password": PASSWORD,
                "display_name": display_name or username.title(),
            },
        )
        return user

    async def login(self, username: str, device_name: str = "laptop") -> str:
        session = await self.ok(
            "POST",
            "/sessions",
            json={"username": username, "password": PASSWORD, "device_name": device_name},
        )
        token: str = session["token"]
        return token

    async def user(self, username: str) -> str:
        """Register ``username`` and log in: its token."""
        await self.register(username)
        return await self.login(username)
