"""What the tests of notifications in ``trunkline serve`` share: a whole node in this
process (database, job queue with the ``notify`` queue, chat, web) on either backend,
a real SMTP server, and clients of its HTTP API and chat socket.

The node runs on the real clock (``pytest.mark.real_clock``): its database, sockets and
SMTP server (in aiosmtpd's own thread) all answer in real time, so waits are explicit -
:func:`eventually` polls a condition, bounded - and the tests that retry set short backoffs
and cooldowns in the node's settings.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from argon2 import profiles
from channel_servers import free_port

import pg
from trunkline import chat
from trunkline.server import NodeContext, Settings, TrunklineNode

__all__ = [
    "API_KEY",
    "PASSWORD",
    "NodeClient",
    "Socket",
    "database_url",
    "eventually",
    "running_node",
]

API_KEY = "a service's key of more than 16 characters"
PASSWORD = "correct horse battery"
CHEAP = chat.Passwords(profiles.CHEAPEST)


@asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database of ``backend``: an SQLite file, or a PostgreSQL schema dropped
    afterwards. No timeouts on the connection: they would run on the virtual clock."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    pg.require_postgres()
    schema = f"test_notify_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg.POSTGRES_URL, timeout=None)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg.with_options(
            pg.POSTGRES_URL, search_path=schema, connect_timeout_s=0, command_timeout_s=0
        )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout_s: float = 20.0
) -> None:
    """Wait for ``check`` to hold, polling; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


class Socket:
    """A chat socket client: requests get their reply, pushes are kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.ws.send_json({"id": request_id, "op": op, **fields})
        while True:
            frame = await self._frame()
            if "type" in frame:
                self.pushes.append(frame)
            elif frame.get("id") == request_id:
                return frame

    async def push(self, kind: str) -> dict[str, Any]:
        """The next push of type ``kind`` (kept ones first)."""
        while True:
            for push in self.pushes:
                if push["type"] == kind:
                    self.pushes.remove(push)
                    return push
            frame = await self._frame()
            if "type" in frame:
                self.pushes.append(frame)

    async def _frame(self) -> dict[str, Any]:
        message = await self.ws.receive()
        assert message.type is aiohttp.WSMsgType.TEXT, message
        frame: dict[str, Any] = message.json()
        return frame


@dataclass
class NodeClient:
    """A client of a running node: its HTTP API and chat socket."""

    context: NodeContext
    base: str
    session: aiohttp.ClientSession
    sockets: list[Socket] = field(default_factory=list)

    async def call(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> aiohttp.ClientResponse:
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("http") else f"{self.base}/api/v1{path}"
        return await self.session.request(method, url, headers=headers, **kw)

    async def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        """The JSON of a successful answer (None for 204)."""
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
        error: dict[str, Any] = body["error"]
        return error

    async def user(self, username: str) -> tuple[int, str]:
        """Register ``username`` and log in: its id and token."""
        user = await self.ok(
            "POST",
            "/accounts",
            json={"username": username, "password": PASSWORD, "display_name": username.title()},
        )
        session = await self.ok(
            "POST", "/sessions", json={"username": username, "password": PASSWORD}
        )
        return int(user["id"]), str(session["token"])

    async def socket(self, token: str) -> Socket:
        """A chat socket, authenticated with ``token``."""
        socket = Socket(await self.session.ws_connect(f"{self.base}/socket"))
        reply = await socket.request("auth", token=token)
        assert reply["ok"] is True, reply
        self.sockets.append(socket)
        return socket

    async def direct(self, token: str, username: str) -> int:
        """The direct room of the token's user with ``username``."""
        room = await self.ok("POST", "/direct", token, json={"user": username})
        return int(room["id"])

    async def send(self, socket: Socket, room: int, body: str) -> int:
        """Send ``body`` to ``room`` on ``socket``; its seq."""
        joined = await socket.request("join", room=room)
        assert "error" not in joined, joined
        reply = await socket.request("send", room=room, body=body, client_msg_id=uuid.uuid4().hex)
        assert reply["ok"] is True, reply
        return int(reply["message"]["seq"])


@asynccontextmanager
async def running_node(backend: str, tmp_path: Path, **notify: Any) -> AsyncIterator[NodeClient]:
    """A started node on a fresh database with the ``[notify]`` settings ``notify`` (and
    :data:`API_KEY`), on a port chosen first so that the links it writes work."""
    async with database_url(backend, tmp_path) as url:
        port = free_port()
        settings = Settings.model_validate(
            {
                "database": url,
                "host": "127.0.0.1",
                "port": port,
                "shutdown_grace_s": 1,
                "notify": {"api_keys": [API_KEY], **notify},
            }
        )
        context = NodeContext(settings, passwords=CHEAP)
        node = TrunklineNode(context)
        await node.start()
        try:
            async with aiohttp.ClientSession() as session:
                client = NodeClient(context, f"http://127.0.0.1:{port}", session)
                try:
                    yield client
                finally:
                    for socket in client.sockets:
                        await socket.ws.close()
        finally:
            await node.stop()
            assert await node.wait() == 0
