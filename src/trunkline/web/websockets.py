"""The node's open WebSockets, so that a stopping server can tell each client to reconnect.

A WebSocket handler registers its connection with :func:`track_websocket` once prepared, and
:func:`untrack_websocket` when it is done (a plain set: a weak one costs a weak reference per
socket). When the server stops (the app's ``on_shutdown``, after it stopped accepting
connections), every one still open is closed with code 1012, *service restart*: clients
should reconnect, to this node when it is back or to another.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web

__all__ = [
    "RESTART_MESSAGE",
    "WEBSOCKETS",
    "close_websockets",
    "track_websocket",
    "untrack_websocket",
]

WEBSOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("trunkline.web.websockets")
"""The app's open WebSockets."""

RESTART_MESSAGE = b"server restarting"


def track_websocket(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Close ``ws`` with 1012 (service restart) when the server stops."""
    request.app[WEBSOCKETS].add(ws)


def untrack_websocket(request: web.Request, ws: web.WebSocketResponse) -> None:
    """``ws`` is done with: forget it (call it in the handler's ``finally``)."""
    request.app[WEBSOCKETS].discard(ws)


async def close_websockets(app: web.Application) -> None:
    """Close every open WebSocket of ``app`` with 1012; the app's ``on_shutdown`` hook."""
    sockets = [ws for ws in app[WEBSOCKETS] if not ws.closed]
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.SERVICE_RESTART, message=RESTART_MESSAGE) for ws in sockets),
        return_exceptions=True,
    )
