"""The chat WebSocket endpoint, ``GET /socket``: a socket adapted to a connection process.

The handler accepts the WebSocket, starts a :class:`~trunkline.chat.connection.Connection`
for it and hands it each frame, one at a time (the next frame is read once the last is
handled, so a client that floods is slowed by TCP rather than buffered). Frames the
connection sends go through a :class:`WebSocketTransport`: a queue drained by a writer task
that exists only while there is something to write. The queue holds at most
``limits.max_outbound_bytes`` (in characters); a client that lets more pile up is
**disconnected** - its TCP connection is dropped, since a client that reads nothing would not
read a close frame either.

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
from collections import deque
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from trunkline import otp
from trunkline.chat.connection import handle_frame, start_connection
from trunkline.chat.tree import ChatLimits, ChatTree

from .websockets import track_websocket

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext, WebHook

__all__ = ["CHAT", "WebSocketTransport", "add_chat_socket", "chat_socket_hook", "max_msg_size"]

log = logging.getLogger("trunkline.web")

CHAT: web.AppKey[ChatTree] = web.AppKey("trunkline.chat")
"""The node's chat tree, for handlers."""


def max_msg_size(limits: ChatLimits) -> int:
    """The largest frame aiohttp reads before closing with 1009: four times the protocol's
    limit, at least 64 KiB, so that a frame a little too large gets a ``too_large`` answer."""
    return max(4 * limits.max_frame_bytes, 65_536)


def add_chat_socket(app: web.Application, tree: ChatTree) -> None:
    """Serve the chat protocol at ``GET /socket`` with ``tree``."""
    app[CHAT] = tree
    app.router.add_get("/socket", socket_handler, name="chat_socket")


def chat_socket_hook(tree: ChatTree) -> WebHook:
    """A web hook (``NodeContext.web_hooks``) adding the chat socket of ``tree``."""

    def hook(app: web.Application, context: NodeContext) -> None:
        add_chat_socket(app, tree)

    return hook


async def socket_handler(request: web.Request) -> web.StreamResponse:
    """``GET /socket``: see the module documentation."""
    tree = request.app[CHAT]
    ws = web.WebSocketResponse(max_msg_size=max_msg_size(tree.limits))
    await ws.prepare(request)
    track_websocket(request, ws)
    transport = WebSocketTransport(ws, request.transport, tree.limits.max_outbound_bytes)
    try:
        connection = await start_connection(tree, transport)
    except Exception:
        log.exception("chat socket: cannot start a connection process")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"server error")
        return ws
    try:
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                text: str | None = frame.data
            elif frame.type is WSMsgType.BINARY:
                text = None
            else:
                break
            try:
                await handle_frame(connection, text)
            except otp.CallError:
                break  # the connection process ended (idle timeout, killed)
    finally:
        if otp.is_alive(connection):
            with contextlib.suppress(otp.CallError):
                await otp.stop(connection, timeout=1.0)
        await transport.finish()
        if not ws.closed:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"connection ended")
    return ws


class WebSocketTransport:
    """A connection's way out to its WebSocket; see the module documentation.

    Args:
        ws: the prepared WebSocket.
        transport: the TCP transport under it (aborted to drop a slow client).
        max_outbound_bytes: frames queued at most, in characters.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        max_outbound_bytes: int,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._max = max_outbound_bytes
        self._queue: deque[str] = deque()
        self._pending = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None
        self._dead = False
        self.overflowed = False
        """Whether the client was disconnected for being too slow."""

    @property
    def pending(self) -> int:
        """Characters queued and not yet written."""
        return self._pending

    def send(self, text: str) -> bool:
        if self._dead or self._closing is not None:
            return False
        size = len(text)
        if self._pending + size > self._max:
            log.info("chat socket: a client too slow to read was disconnected")
            self.overflowed = True
            self._abort()
            return False
        self._queue.append(text)
        self._pending += size
        self._wake()
        return True

    def close(self, code: int, reason: str) -> None:
        if self._dead or self._closing is not None:
            return
        self._closing = (code, reason)
        self._wake()

    async def finish(self) -> None:
        """Stop writing (the socket is done with)."""
        self._dead = True
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue and not self._dead:
                text = self._queue[0]
                await self._ws.send_str(text)
                self._queue.popleft()
                self._pending -= len(text)
            if self._closing is not None and not self._dead:
                code, reason = self._closing
                await self._ws.close(code=code, message=reason.encode())
        except (ConnectionError, RuntimeError):
            self._abort()  # the client went away while we wrote
        finally:
            self._writer = None

    def _abort(self) -> None:
        self._dead = True
        self._queue.clear()
        self._pending = 0
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        if self._transport is not None:
            self._transport.abort()
