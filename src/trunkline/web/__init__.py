"""trunkline.web: the node's HTTP and WebSocket server, on aiohttp.

- :mod:`~trunkline.web.app`: the application factory (routes, middlewares, lifecycle);
- :mod:`~trunkline.web.server`: :class:`WebServer`, the process that serves it;
- :mod:`~trunkline.web.openapi`: JSON routes declared with pydantic models, and the OpenAPI
  document (``/openapi.json``, ``/docs``);
- :mod:`~trunkline.web.errors`: the JSON error shape;
- :mod:`~trunkline.web.health`, :mod:`~trunkline.web.metrics`: ``/healthz`` and ``/metrics``;
- :mod:`~trunkline.web.prometheus`: the telemetry reporter behind ``/metrics``;
- :mod:`~trunkline.web.websockets`: open WebSockets, closed with 1012 on shutdown.

See ``docs/server.md``.
"""

from .app import CONTEXT, make_app
from .errors import ApiError, ErrorBody
from .metrics import REQUEST_EVENT, VM_EVENT, default_metrics
from .openapi import API, Api, Respond
from .prometheus import PrometheusReporter
from .server import ListenError, WebServer
from .websockets import track_websocket, untrack_websocket

__all__ = [
    "API",
    "CONTEXT",
    "REQUEST_EVENT",
    "VM_EVENT",
    "Api",
    "ApiError",
    "ErrorBody",
    "ListenError",
    "PrometheusReporter",
    "Respond",
    "WebServer",
    "default_metrics",
    "make_app",
    "track_websocket",
    "untrack_websocket",
]
