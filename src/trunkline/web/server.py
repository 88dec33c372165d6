"""The web server process: HTTP and WebSocket on one port, as a child of the node's tree.

:class:`WebServer` is a GenServer. Its ``init`` builds the aiohttp application
(:func:`~trunkline.web.app.make_app`), starts listening on the settings' host and port (``0``:
any free port; the bound one is recorded in the context and answered to ``call(pid, "port")``)
and logs ``listening on http://host:port``. A port that cannot be bound (in use, not
permitted) fails the start with :class:`ListenError`, a one-line reason.

Stopping (it traps exits, so its supervisor's shutdown runs ``terminate``) is the graceful part
of a node's shutdown, and comes first since the web server starts last:

1. stop accepting connections;
2. close open WebSockets with 1012 (*service restart*: clients reconnect);
3. let in-flight requests finish, within ``shutdown_grace_s``; then cancel the rest.

Access logs go to the ``trunkline.web`` logger.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from trunkline import otp

from .app import make_app

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = ["SHUTDOWN_MARGIN_S", "ListenError", "WebServer"]

log = logging.getLogger("trunkline.web")

SHUTDOWN_MARGIN_S = 5.0
"""What a supervisor gives the server beyond ``shutdown_grace_s`` before killing it."""


class ListenError(Exception):
    """The reason a web server failed to start: it could not listen on its address."""

    def __init__(self, host: str, port: int, why: str) -> None:
        super().__init__(f"cannot listen on http://{host}:{port}: {why}")
        self.host = host
        self.port = port
        self.why = why

    def __repr__(self) -> str:
        return f"ListenError({str(self)!r})"


class WebServer(otp.GenServer):
    """Serves the node's application; see the module documentation.

    ``init`` takes the node's :class:`~trunkline.server.NodeContext`. Calls: ``"port"`` -> the
    bound port.
    """

    trap_exit = True

    async def init(self, context: NodeContext) -> Any:
        self.context = context
        settings = context.settings
        self.runner = web.AppRunner(
            make_app(context),
            handle_signals=False,
            access_log=log,
            shutdown_timeout=settings.shutdown_grace_s,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as error:
            await self.runner.cleanup()
            why = os.strerror(error.errno).lower() if error.errno else str(error)
            # ("shutdown", ...): a clean failure, reported once, without a crash report.
            return otp.Stop((otp.SHUTDOWN, ListenError(settings.host, settings.port, why)))
        self.port: int = self.runner.addresses[0][1]
        context.web_port = self.port
        log.info(
            "listening on http://%s:%d",
            _display(settings.host),
            self.port,
            extra={"host": settings.host, "port": self.port},
        )
        return None

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "port":
            return self.port
        return super().handle_call(request, from_)

    async def terminate(self, reason: Any) -> None:
        runner = getattr(self, "runner", None)
        if runner is None or runner.server is None:
            return
        log.info(
            "stopping: no new connections, closing WebSockets, letting requests finish "
            "(up to %s s)",
            self.context.settings.shutdown_grace_s,
        )
        await runner.cleanup()
        self.context.web_port = None
        log.info("stopped listening")


def _display(host: str) -> str:
    return f"[{host}]" if ":" in host else host
