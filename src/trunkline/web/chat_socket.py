"""The chat WebSocket endpoint, ``GET /socket``: a socket adapted to a connection process.

The handler accepts the WebSocket and runs a :class:`~trunkline.chat.connection.Connection`
in its own task, which becomes the connection's process: it hands the connection each
frame, one at a time (the next frame is read once the last is handled, so a client that
floods is slowed by TCP rather than buffered). One task of the app's closes the sockets
that sent nothing for ``limits.idle_timeout_s`` with 1001 (looking every quarter of it).

Frames the server sends go through a :class:`WebSocketTransport`, which builds each WebSocket
frame itself and writes it to the TCP transport without a task or a queue of its own: a
room's push is built once (its bytes are kept on the push) and written as they are to every
member's socket. So compression is off - it would cost a compression per recipient, for
frames of a few hundred bytes. The frames a socket is given during one pass of the event loop
are written together at the end of it (:class:`Outbox`): one system call for all of them. A
busy room's messages are stored and broadcast in batches, so a member's socket is often given
several at once, and the write, not the frame, is what costs. The TCP transport's buffer is
the outbound queue: when a frame would take it past ``limits.max_outbound_bytes`` (bytes), the
client is too slow and is **disconnected** - its TCP connection is dropped, since a client that
reads nothing would not read a close frame either.

Frame sizes: a text frame over ``limits.max_frame_bytes`` is answered ``too_large`` and the
connection goes on; aiohttp itself reads frames of at most four times that (at least
64 KiB) and closes the socket with **1009** (*message too big*) past it, before the frame is
in memory whole.

The protocol itself is in ``docs/chat.md`` ("WebSocket protocol").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from trunkline.chat.connection import CLOSE_IDLE, CLOSE_REVOKED, Connection
from trunkline.chat.pushes import RoomPush
from trunkline.chat.tree import ChatLimits, ChatTree

from .websockets import track_websocket, untrack_websocket

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext, WebHook

__all__ = [
    "CHAT",
    "CONNECTIONS",
    "OUTBOX",
    "Outbox",
    "WebSocketTransport",
    "add_chat_socket",
    "chat_socket_hook",
    "max_msg_size",
    "text_frame",
]

log = logging.getLogger("trunkline.web")

CHAT: web.AppKey[ChatTree] = web.AppKey("trunkline.chat")
"""The node's chat tree, for handlers."""


def max_msg_size(limits: ChatLimits) -> int:
    """The largest frame aiohttp reads before closing with 1009: four times the protocol's
    limit, at least 64 KiB, so that a frame a little too large gets a ``too_large`` answer."""
    return max(4 * limits.max_frame_bytes, 65_536)


CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("trunkline.chat.connections")
"""The connections of the app's open chat sockets (for the idle sweep)."""


class Outbox:
    """The sockets given frames during this pass of the event loop: written at its end, each
    in one call (see the module documentation).

    Args:
        max_outbound_bytes: a socket's outbound bytes at most (held here, and in its TCP
            transport's buffer).
    """

    __slots__ = ("_holding", "max_outbound_bytes")

    def __init__(self, max_outbound_bytes: int) -> None:
        self.max_outbound_bytes = max_outbound_bytes
        self._holding: list[WebSocketTransport] = []

    def hold(self, transport: WebSocketTransport) -> None:
        """``transport`` holds frames: write them at the end of this pass."""
        if not self._holding:
            asyncio.get_running_loop().call_soon(self.flush)
        self._holding.append(transport)

    def flush(self) -> None:
        """Write what every socket holds."""
        holding, self._holding = self._holding, []
        for transport in holding:
            transport.flush()


OUTBOX: web.AppKey[Outbox] = web.AppKey("trunkline.chat.outbox")
"""The app's :class:`Outbox`."""


def add_chat_socket(app: web.Application, tree: ChatTree) -> None:
    """Serve the chat protocol at ``GET /socket`` with ``tree``."""
    app[CHAT] = tree
    app[CONNECTIONS] = set()
    app[OUTBOX] = Outbox(tree.limits.max_outbound_bytes)
    app.router.add_get("/socket", socket_handler, name="chat_socket")
    app.cleanup_ctx.append(_idle_sweep)


async def _idle_sweep(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, close the sockets quiet for ``idle_timeout_s``, looking every
    quarter of it: one task for all sockets rather than a timer each (a timer per socket
    costs more memory than the rest of its state)."""
    limits = app[CHAT].limits
    connections = app[CONNECTIONS]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(limits.idle_timeout_s / 4)
            for connection in [c for c in connections if c.quiet_s() >= limits.idle_timeout_s]:
                connection.transport.close(CLOSE_IDLE, "idle timeout")

    task = asyncio.get_running_loop().create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def close_device_sockets(app: web.Application, user_id: int, device_id: int) -> int:
    """Close the app's sockets authenticated as ``device_id`` of ``user_id`` with
    :data:`~trunkline.chat.connection.CLOSE_REVOKED`: its token was revoked, so what it
    opened ends at once rather than at its next frame. How many were closed."""
    closed = 0
    for connection in app.get(CONNECTIONS, ()):
        if connection.user_id == user_id and connection.device_id == device_id:
            connection.transport.close(CLOSE_REVOKED, "logged out")
            closed += 1
    return closed


def chat_socket_hook(tree: ChatTree) -> WebHook:
    """A web hook (``NodeContext.web_hooks``) adding the chat socket of ``tree``."""

    def hook(app: web.Application, context: NodeContext) -> None:
        add_chat_socket(app, tree)

    return hook


async def socket_handler(request: web.Request) -> web.StreamResponse:
    """``GET /socket``: see the module documentation."""
    tree = request.app[CHAT]
    limits = tree.limits
    ws = web.WebSocketResponse(max_msg_size=max_msg_size(limits), compress=False)
    await ws.prepare(request)
    transport = WebSocketTransport(ws, request.transport, request.app[OUTBOX])
    connections = request.app[CONNECTIONS]
    connection: Connection | None = None
    track_websocket(request, ws)
    try:
        # This task, which reads the socket, is the connection's process (otp.self() adopts
        # it): no task, mailbox or call of its own per connection. It ends when the socket
        # does, and its subscriptions and presences with it.
        connection = Connection(tree, transport)
        connections.add(connection)
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                text: str | None = frame.data
            elif frame.type is WSMsgType.BINARY:
                text = None
            else:
                break
            await connection.handle_frame(text)
    finally:
        untrack_websocket(request, ws)
        if connection is not None:
            connections.discard(connection)
            await connection.ended()
        await transport.finish()
        if not ws.closed:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"connection ended")
    return ws


class WebSocketTransport:
    """A connection's way out to its WebSocket; see the module documentation.

    Args:
        ws: the prepared WebSocket (without compression: frames are written as built here).
        transport: the TCP transport under it, written to directly.
        outbox: where it says it holds frames, to be written at the end of the loop's pass.
    """

    __slots__ = ("_closer", "_dead", "_held", "_outbox", "_transport", "_ws", "overflowed")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        outbox: Outbox,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._outbox = outbox
        self._held: bytes | bytearray | None = None  # frames not written yet
        self._closer: asyncio.Task[None] | None = None
        self._dead = transport is None
        self.overflowed = False  # whether the client was disconnected for being too slow

    @property
    def pending(self) -> int:
        """Bytes given and not yet taken by the client's TCP connection."""
        transport = self._transport
        held = 0 if self._held is None else len(self._held)
        return held if transport is None else held + transport.get_write_buffer_size()

    def send(self, text: str) -> bool:
        return self._write(text_frame(text.encode()))

    def send_push(self, push: RoomPush) -> bool:
        wire = push.wire
        if wire is None:
            wire = push.wire = text_frame(push.frame.encode())
        return self._write(wire)

    def close(self, code: int, reason: str) -> None:
        if self._dead or self._closer is not None:
            return
        self.flush()  # the close frame comes after what was given before it
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def finish(self) -> None:
        """Stop writing (the socket is done with)."""
        self._dead = True
        self._held = None
        closer = self._closer
        if closer is not None and closer is not asyncio.current_task():
            closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closer

    def flush(self) -> None:
        """Write the frames held, in one call."""
        held = self._held
        if held is None:
            return
        self._held = None
        if self._dead:
            return
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self._dead = True  # the client went away
            return
        try:
            transport.write(held)
        except Exception:
            # Written with every other socket of the pass: one broken socket must not fail
            # the others, nor leave them holding frames that nothing would write.
            log.info("chat socket: a write failed; the client is disconnected", exc_info=True)
            self._dead = True
            transport.abort()

    def _write(self, wire: bytes) -> bool:
        if self._dead or self._closer is not None:
            return False
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self._dead = True  # the client went away
            return False
        held = self._held
        outbound = transport.get_write_buffer_size() + len(wire)
        if held is not None:
            outbound += len(held)
        if outbound > self._outbox.max_outbound_bytes:
            log.info("chat socket: a client too slow to read was disconnected")
            self.overflowed = True
            self._dead = True
            self._held = None
            transport.abort()
            return False
        if held is None:
            self._held = wire
            self._outbox.hold(self)
        elif type(held) is bytearray:
            held += wire
        else:
            self._held = bytearray(held) + wire
        return True

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.close(code=code, message=reason.encode())
        self._dead = True


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked, uncompressed WebSocket text frame (RFC 6455 5.2) holding
    ``payload``, as a server sends it."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return _HEADER_16.pack(0x81, 126, size) + payload
    return _HEADER_64.pack(0x81, 127, size) + payload


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
