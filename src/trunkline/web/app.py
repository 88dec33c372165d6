"""The node's aiohttp application: its routes, middlewares and lifecycle hooks.

:func:`make_app` builds it from the node's context (:class:`~trunkline.server.NodeContext`):

- middlewares, outermost first: a telemetry span per request (:data:`REQUEST_EVENT`), then
  JSON errors (:mod:`trunkline.web.errors`: unknown routes are a JSON 404, a handler's
  exception a JSON 500 with the request id);
- the routes of the :class:`~trunkline.web.openapi.Api` (``app[API]``): ``GET /healthz``,
  ``GET /metrics``, what the context's ``web_hooks`` declare, ``GET /openapi.json`` and
  ``GET /docs``; and the browser chat client, ``GET /`` and ``GET /client/...``
  (:mod:`trunkline.web.client`);
- on startup the Prometheus reporter (``app[METRICS]``) attaches to telemetry; on shutdown
  open WebSockets are closed with 1012; on cleanup the reporter detaches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from aiohttp import web

from trunkline import otp

from .client import add_client_routes
from .errors import error_middleware, request_id_of
from .health import add_health_route
from .metrics import METRICS, REQUEST_EVENT, add_metrics_route, make_reporter
from .openapi import API, Api
from .websockets import WEBSOCKETS, close_websockets

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = ["CONTEXT", "make_app", "route_of", "telemetry_middleware"]

CONTEXT: web.AppKey[NodeContext] = web.AppKey("trunkline.web.context")
"""The node's context, for handlers: ``request.app[CONTEXT].database``."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The pattern of the route that matched (``/rooms/{id}``), or ``unmatched``: a label
    whose values are bounded by the routes, whatever paths clients send."""
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


@web.middleware
def telemetry_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Run the request in a span of :data:`~trunkline.web.metrics.REQUEST_EVENT`; a
    WebSocket upgrade has none (its life is the socket's: it would swamp the durations of
    requests, and a span held open per socket costs memory for nothing).

    Not a coroutine: an upgrade's handler is handed on rather than awaited here, so that no
    frame of this middleware is held for as long as the socket lives."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return handler(request)
    return _in_span(request, handler)


async def _in_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    metadata = {
        "method": request.method,
        "route": route_of(request),
        "request_id": request_id_of(request),
    }
    with otp.telemetry.span(REQUEST_EVENT, metadata) as span:
        response = await handler(request)
        span.set(status=response.status)
    return response


def make_app(context: NodeContext) -> web.Application:
    """The node's application; see the module documentation."""
    app = web.Application(middlewares=[telemetry_middleware, error_middleware])
    app[CONTEXT] = context
    api = app[API] = Api(
        title="trunkline",
        version=_version(),
        description="The HTTP API of a trunkline node.",
        max_body_bytes=context.settings.max_body_bytes,
    )
    reporter = app[METRICS] = make_reporter()
    app[WEBSOCKETS] = set()

    async def start_reporter(app: web.Application) -> None:
        reporter.start()

    async def stop_reporter(app: web.Application) -> None:
        reporter.stop()

    app.on_startup.append(start_reporter)
    app.on_shutdown.append(close_websockets)
    app.on_cleanup.append(stop_reporter)
    add_health_route(api, context)
    add_metrics_route(api)
    for hook in context.web_hooks:
        hook(app, context)
    api.add_routes(app)
    add_client_routes(app)
    return app


def _version() -> str:
    try:
        return version("trunkline")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0.0.0"
