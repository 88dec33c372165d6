"""The chat WebSocket, end to end: a real aiohttp server on 127.0.0.1 with the chat tree on a
real database (SQLite and PostgreSQL), and real WebSocket clients."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import profiles

import pg
from trunkline import chat, db, otp
from trunkline.chat.connection import CLOSE_REVOKED
from trunkline.chat.tree import ChatLimits, ChatTree
from trunkline.otp.testing import wait_until
from trunkline.server import NodeContext, Settings
from trunkline.web import make_app
from trunkline.web.chat_api import add_chat_api
from trunkline.web.chat_socket import add_chat_socket, max_msg_size

CHEAP = chat.Passwords(profiles.CHEAPEST)
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def clock() -> otp.MockClock:
    # Virtual time for idle timeouts and rate windows; it jumps only after 50 ms of real
    # idleness, which the database and the loopback socket never need.
    return otp.MockClock(autojump_threshold_s=0.05)


@asynccontextmanager
async def open_database(backend: str, tmp_path: Path) -> AsyncIterator[db.Database]:
    if backend == "sqlite":
        database = await db.connect(f"sqlite:///{tmp_path / 'chat.db'}")
        try:
            await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
            yield database
        finally:
            await database.close()
        return
    async with pg.postgres_schema(1, pg.POSTGRES_URL, command_timeout_s=0) as [database]:
        await database.migrate({chat.COMPONENT: chat.MIGRATIONS})
        yield database


class Client:
    """A WebSocket client of the protocol: requests get their reply, pushes are kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.ws.send_json({"id": request_id, "op": op, **fields})
        return await self.reply(request_id)

    async def reply(self, request_id: Any) -> dict[str, Any]:
        while True:
            frame = await self.frame()
            if "type" in frame:
                self.pushes.append(frame)
            elif frame.get("id") == request_id:
                return frame

    async def frame(self) -> dict[str, Any]:
        message = await self.ws.receive()
        assert message.type is WSMsgType.TEXT, message
        frame: dict[str, Any] = message.json()
        return frame

    async def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` message pushes (kept ones first)."""
        while sum(push["type"] == "message" for push in self.pushes) < count:
            frame = await self.frame()
            assert "type" in frame, frame
            self.pushes.append(frame)
        found = [push for push in self.pushes if push["type"] == "message"][:count]
        for push in found:
            self.pushes.remove(push)
        return found


@dataclass
class Server:
    tree: ChatTree
    database: db.Database
    http: TestClient[web.Request, web.Application]
    names: itertools.count[int] = field(default_factory=itertools.count)

    async def user(self) -> tuple[int, str]:
        name = f"user{next(self.names)}"
        user = await chat.register(self.database, name, PASSWORD, name, passwords=CHEAP)
        _, token, _ = await chat.login(self.database, name, PASSWORD, passwords=CHEAP)
        return user.id, token

    async def client(self, token: str | None = None, **options: Any) -> Client:
        client = Client(await self.http.ws_connect("/socket", **options))
        if token is not None:
            reply = await client.request("auth", token=token)
            assert reply["ok"] is True, reply
        return client


@asynccontextmanager
async def serving(backend: str, tmp_path: Path, **limits: Any) -> AsyncIterator[Server]:
    async with open_database(backend, tmp_path) as database:
        tree = ChatTree(database, limits=ChatLimits(**limits))
        pid = await tree.start_link()
        context = NodeContext(Settings())
        context.database = database
        context.web_hooks.append(add_chat_api)
        app = make_app(context)
        add_chat_socket(app, tree)
        try:
            # No connection limit: aiohttp's client holds at most 100 by default.
            connector = aiohttp.TCPConnector(limit=0)
            server = TestServer(app, host="127.0.0.1", port=0)
            async with TestClient(server, connector=connector) as http:
                yield Server(tree, database, http)
        finally:
            otp.unlink(pid)
            await otp.stop(pid, otp.SHUTDOWN)


async def a_room(server: Server, *users: int) -> int:
    room = await chat.create_room(server.database, users[0], "lobby")
    for user in users[1:]:
        await chat.join(server.database, room.id, user)
    return room.id


async def test_auth_then_join_since_replays_exactly_what_was_missed(
    backend: str, tmp_path: Path
) -> None:
    async with serving(backend, tmp_path) as server:
        (ada, ada_token), (bob, bob_token) = await server.user(), await server.user()
        room = await a_room(server, ada, bob)

        anonymous = await server.client()
        assert (await anonymous.request("join", room=room))["error"]["code"] == "unauthenticated"
        bad = await anonymous.request("auth", token="nope")
        assert bad["error"]["code"] == "unauthenticated"
        assert (await anonymous.request("ping"))["pong"] is True

        sender = await server.client(ada_token)
        for i in range(1, 8):
            reply = await sender.request("send", room=room, body=f"m{i}", client_msg_id=f"c{i}")
            assert reply["ok"] is True
            assert reply["message"]["seq"] == i

        bob_client = await server.client(bob_token)
        joined = await bob_client.request("join", room=room, since=3)
        assert joined == {
            "id": 1 + 1,
            "ok": True,
            "room": room,
            "complete": True,
            "last_seq": 7,
            "presence": {str(bob): {"devices": 1}},  # bob has the room open; ada did not join
        }
        replayed = await bob_client.messages(4)
        assert [push["seq"] for push in replayed] == [4, 5, 6, 7]
        assert [push["message"]["body"] for push in replayed] == ["m4", "m5", "m6", "m7"]
        assert all(push["room"] == room and "server_time" in push for push in replayed)

        # Live after the replay, with no duplicate.
        await sender.request("send", room=room, body="m8", client_msg_id="c8")
        live = await bob_client.messages(1)
        assert live[0]["seq"] == 8
        assert bob_client.pushes == []

        # A retried send is acknowledged with the stored message, not stored again.
        again = await sender.request("send", room=room, body="m8", client_msg_id="c8")
        assert again["duplicate"] is True
        assert again["message"]["seq"] == 8
        await sender.request("send", room=room, body="m9", client_msg_id="c9")
        assert [push["seq"] for push in await bob_client.messages(1)] == [9]


async def test_authorization_and_errors_keep_the_connection(backend: str, tmp_path: Path) -> None:
    async with serving(backend, tmp_path) as server:
        (ada, ada_token), (_, eve_token) = await server.user(), await server.user()
        room = await a_room(server, ada)
        eve = await server.client(eve_token)
        assert (await eve.request("join", room=room))["error"]["code"] == "not_member"
        assert (await eve.request("join", room=9999))["error"]["code"] == "not_member"
        sent = await eve.request("send", room=room, body="hi", client_msg_id="x")
        assert sent["error"]["code"] == "not_member"
        assert (await eve.request("typing", room=room))["error"]["code"] == "not_joined"
        await eve.ws.send_str("{not json")
        assert (await eve.reply(None))["error"]["code"] == "bad_frame"
        assert (await eve.request("teleport"))["error"]["code"] == "unknown_op"
        assert (await eve.request("join", room="lobby"))["error"]["code"] == "invalid"

        ada_client = await server.client(ada_token)
        long_body = await ada_client.request("send", room=room, body="x" * 5000, client_msg_id="l")
        assert long_body["error"]["code"] == "too_large"
        reply = await ada_client.request("send", room=room, body="hello", client_msg_id="h")
        edited = await ada_client.request("edit", room=room, seq=1, body="hello!")
        assert (edited["message"]["version"], edited["message"]["body"]) == (2, "hello!")
        assert reply["message"]["seq"] == 1
        assert (await ada_client.request("read", room=room, seq=1))["seq"] == 1
        assert server.tree.is_connected(ada)
        assert (await eve.request("ping"))["pong"] is True


async def test_every_client_gets_every_message_once_in_order(backend: str, tmp_path: Path) -> None:
    # The shape: 200 clients in one room, each receiving every message.
    clients_count, senders_count, per_sender = 200, 5, 10
    async with serving(backend, tmp_path) as server:
        users = [await server.user() for _ in range(clients_count)]
        room = await a_room(server, *(user_id for user_id, _ in users))
        clients = [await server.client(token) for _, token in users]
        for client in clients:
            assert (await client.request("join", room=room))["ok"] is True

        acked: dict[int, list[dict[str, Any]]] = {i: [] for i in range(senders_count)}

        async def send_all(client: Client, index: int) -> None:
            for i in range(per_sender):
                reply = await client.request(
                    "send", room=room, body=f"{index}:{i}", client_msg_id=f"{index}-{i}"
                )
                assert reply["ok"] is True
                acked[index].append(reply["message"])

        await asyncio.gather(*(send_all(clients[i], i) for i in range(senders_count)))
        total = senders_count * per_sender
        for n, client in enumerate(clients):
            # A sender has its own messages in the replies, not as pushes.
            own = acked.get(n, [])
            received = await client.messages(total - len(own))
            seqs = [push["seq"] for push in received]
            assert seqs == sorted(seqs)
            assert not {message["seq"] for message in own} & set(seqs)
            everything = sorted(
                [push["message"] for push in received] + own, key=lambda m: int(m["seq"])
            )
            assert [message["seq"] for message in everything] == list(range(1, total + 1))
            # Each sender's messages in the order it sent them.
            for index in range(senders_count):
                mine = [m["body"] for m in everything if m["body"][0] == str(index)]
                assert mine == [f"{index}:{i}" for i in range(per_sender)]
        # Nothing more came: a ping's reply is the next frame of every client.
        for client in clients:
            assert (await client.request("ping"))["pong"] is True
            assert client.pushes == []


async def test_an_oversized_frame_is_too_large_and_a_huge_one_closes_1009(
    backend: str, tmp_path: Path
) -> None:
    async with serving(backend, tmp_path, max_frame_bytes=1000) as server:
        _, token = await server.user()
        client = await server.client(token)
        await client.ws.send_str('{"id": "big", "op": "ping", "pad": "' + "x" * 5000 + '"}')
        error = await client.reply("big")
        assert error["error"]["code"] == "too_large"
        assert (await client.request("ping"))["pong"] is True

        limit = max_msg_size(server.tree.limits)
        await client.ws.send_str('{"id": "huge", "pad": "' + "x" * limit + '"}')
        closed = await client.ws.receive()
        assert closed.type is WSMsgType.CLOSE
        assert closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_flood_is_rate_limited_and_the_connection_recovers(
    backend: str, tmp_path: Path, clock: otp.MockClock
) -> None:
    async with serving(backend, tmp_path, rate_per_s=5, rate_burst=10) as server:
        _, token = await server.user()
        client = await server.client(token)  # auth took one token
        for i in range(30):
            await client.ws.send_json({"id": i, "op": "ping"})
        replies = [await client.frame() for _ in range(30)]
        codes = [reply.get("error", {}).get("code") for reply in replies]
        assert codes.count(None) == 9
        assert codes[9:] == ["rate_limited"] * 21
        assert replies[29]["id"] == 29
        assert replies[29]["error"]["retry"] is True
        clock.jump(1)
        assert (await client.request("ping"))["pong"] is True


async def test_a_client_that_never_reads_is_disconnected(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trunkline.web")
    async with serving(backend, tmp_path, max_outbound_bytes=20_000, rate_burst=10_000) as server:
        (slow_id, slow_token), (ada, ada_token), (bob, bob_token) = [
            await server.user() for _ in range(3)
        ]
        room = await a_room(server, slow_id, ada, bob)

        # A raw client with a small receive window: it authenticates, joins, then reads
        # nothing at all (an aiohttp client would keep reading into its own memory).
        url = server.http.make_url("/socket")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.host, url.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(
            b"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        writer.write(masked_text_frame(json.dumps({"id": 1, "op": "auth", "token": slow_token})))
        writer.write(masked_text_frame(json.dumps({"id": 2, "op": "join", "room": room})))
        await writer.drain()
        try:
            assert (await read_text_frame(reader))["ok"] is True  # auth
            assert (await read_text_frame(reader))["ok"] is True  # join
            # From now on the slow client reads nothing.
            watcher = await server.client(bob_token)
            assert (await watcher.request("join", room=room))["ok"] is True
            sender = await server.client(ada_token)
            body = "y" * 3900
            sent = 0
            while server.tree.is_connected(slow_id):
                assert sent < 1000, "the slow client was never disconnected"
                sent += 1
                reply = await sender.request("send", room=room, body=body, client_msg_id=str(sent))
                assert reply["ok"] is True, reply
                # The other member keeps up and gets everything.
                assert [p["seq"] for p in await watcher.messages(1)] == [sent]
            assert sent > 5  # it had been reading fine until its buffers filled up
            assert "a client too slow to read was disconnected" in caplog.text
            reply = await sender.request("send", room=room, body="after", client_msg_id="after")
            assert [p["seq"] for p in await watcher.messages(1)] == [reply["message"]["seq"]]
        finally:
            writer.close()


async def test_a_member_kicked_or_leaving_over_http_stops_getting_the_room(
    backend: str, tmp_path: Path
) -> None:
    async with serving(backend, tmp_path) as server:
        (ada, ada_token), (bob, bob_token), (cy, cy_token) = [await server.user() for _ in range(3)]
        room = await a_room(server, ada, bob, cy)
        clients = [await server.client(token) for token in (ada_token, bob_token, cy_token)]
        for client in clients:
            assert (await client.request("join", room=room))["ok"] is True
        owner, kicked, leaving = clients
        owner_elsewhere = await server.client(ada_token)  # another socket of the owner's
        assert (await owner_elsewhere.request("join", room=room))["ok"] is True

        async def post(token: str, path: str, body: dict[str, Any] | None = None) -> None:
            response = await server.http.post(
                f"/api/v1/rooms/{room}/{path}",
                json=body or {},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status < 300, await response.text()

        await post(ada_token, "kick", {"user": "user1"})
        await post(cy_token, "leave")  # from another device than the socket
        for client, reason in ((kicked, "kicked"), (leaving, "left")):
            frame = await client.frame()
            assert frame == {"type": "removed", "room": room, "reason": reason}
        reply = await owner.request("send", room=room, body="after", client_msg_id="c1")
        assert reply["ok"] is True
        assert [p["message"]["body"] for p in await owner_elsewhere.messages(1)] == ["after"]
        for client in (kicked, leaving):
            # The push would have been written before the ack: a pong after it proves none.
            assert (await client.request("ping"))["ok"] is True
            assert client.pushes == []
            error = await client.request("send", room=room, body="x", client_msg_id="c2")
            assert error["error"]["code"] == "not_member"


async def test_presence_over_http_follows_the_sockets(backend: str, tmp_path: Path) -> None:
    async with serving(backend, tmp_path) as server:
        (ada, ada_token), (bob, bob_token) = await server.user(), await server.user()
        room = await a_room(server, ada, bob)
        headers = {"Authorization": f"Bearer {ada_token}"}

        async def get(path: str) -> dict[str, Any]:
            response = await server.http.get(path, headers=headers)
            assert response.status == 200, await response.text()
            found: dict[str, Any] = await response.json()
            return found

        bob_socket = await server.client(bob_token)
        presence = await get("/api/v1/users/user1/presence")
        assert (presence["user"]["id"], presence["online"], presence["devices"]) == (bob, True, 1)
        members = (await get(f"/api/v1/rooms/{room}/members"))["members"]
        assert {m["user"]["id"]: m["online"] for m in members} == {ada: False, bob: True}

        await bob_socket.ws.close()
        await wait_until(lambda: not server.tree.is_connected(bob))
        presence = await get("/api/v1/users/user1/presence")
        assert (presence["online"], presence["devices"]) == (False, 0)
        assert presence["last_seen_at"] is not None
        response = await server.http.get("/api/v1/users/nobody/presence", headers=headers)
        assert response.status == 404


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return (
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


async def read_text_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    first, length = await reader.readexactly(2)
    assert first == 0x81
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    frame: dict[str, Any] = json.loads(await reader.readexactly(length))
    return frame


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The names of the coroutines ``task`` is suspended in, outermost first."""
    names = []
    coroutine: Any = task.get_coro()
    while coroutine is not None and hasattr(coroutine, "cr_code"):
        names.append(coroutine.cr_code.co_name)
        coroutine = coroutine.cr_await
    return names


async def test_a_socket_holds_no_frame_of_the_middlewares(backend: str, tmp_path: Path) -> None:
    # A socket lives for hours: a middleware awaiting its handler would hold a frame (some
    # hundreds of bytes) all that time, for each socket.
    async with serving(backend, tmp_path) as server:
        _, token = await server.user()
        await server.client(token)
        [task] = [t for t in asyncio.all_tasks() if "socket_handler" in awaiting(t)]
        held = set(awaiting(task))
        assert {"_handle_request", "socket_handler"} <= held
        assert not held & {
            "telemetry_middleware",
            "_in_span",
            "chat_error_middleware",
            "_in_chat_shape",
        }


async def test_an_idle_connection_is_closed(
    backend: str, tmp_path: Path, clock: otp.MockClock
) -> None:
    async with serving(backend, tmp_path, idle_timeout_s=30) as server:
        user_id, token = await server.user()
        client = await server.client(token)
        assert server.tree.is_connected(user_id)
        closed = await client.ws.receive()  # the next frame: the close
        assert closed.type is WSMsgType.CLOSE
        assert closed.data == 1001
        assert clock.monotonic() >= 30


async def test_a_device_logged_out_or_revoked_loses_its_open_sockets_at_once(
    backend: str, tmp_path: Path
) -> None:
    async with serving(backend, tmp_path) as server:
        name = f"user{next(server.names)}"
        await chat.register(server.database, name, PASSWORD, name, passwords=CHEAP)
        logins = [
            await chat.login(server.database, name, PASSWORD, device_name=d, passwords=CHEAP)
            for d in ("laptop", "phone", "tablet")
        ]
        laptop, phone, tablet = [await server.client(login.token) for login in logins]

        def bearer(login: chat.Login) -> dict[str, str]:
            return {"Authorization": f"Bearer {login.token}"}

        # The laptop revokes the phone: the phone's socket is closed, nobody else's.
        response = await server.http.delete(
            f"/api/v1/devices/{logins[1].device.id}", headers=bearer(logins[0])
        )
        assert response.status == 204
        closed = await phone.ws.receive()
        assert (closed.type, closed.data) == (WSMsgType.CLOSE, CLOSE_REVOKED)
        # The tablet logs itself out: its socket is closed too.
        response = await server.http.delete("/api/v1/sessions/current", headers=bearer(logins[2]))
        assert response.status == 204
        closed = await tablet.ws.receive()
        assert (closed.type, closed.data) == (WSMsgType.CLOSE, CLOSE_REVOKED)
        assert (await laptop.request("ping"))["pong"] is True
        # And a socket cannot come back with the revoked token.
        again = await server.client()
        error = await again.request("auth", token=logins[1].token)
        assert error["error"]["code"] == "unauthenticated"


async def test_an_invitation_or_a_direct_room_is_pushed_to_the_user_at_once(
    backend: str, tmp_path: Path
) -> None:
    async with serving(backend, tmp_path) as server:
        (ada, ada_token), (_, bob_token) = await server.user(), await server.user()
        room = await a_room(server, ada)
        bob_socket, bob_elsewhere = await server.client(bob_token), await server.client(bob_token)
        unauthenticated = await server.client()
        headers = {"Authorization": f"Bearer {ada_token}"}
        response = await server.http.post(
            f"/api/v1/rooms/{room}/invites", json={"user": "user1"}, headers=headers
        )
        assert response.status == 204, await response.text()
        for socket in (bob_socket, bob_elsewhere):
            assert await socket.frame() == {"type": "rooms", "reason": "invited", "room": room}
        response = await server.http.post("/api/v1/direct", json={"user": "user1"}, headers=headers)
        direct = (await response.json())["id"]
        assert await bob_socket.frame() == {"type": "rooms", "reason": "direct", "room": direct}
        # Nothing went to a socket that has not authenticated.
        assert (await unauthenticated.request("ping"))["pong"] is True
        assert unauthenticated.pushes == []
