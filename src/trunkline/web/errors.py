"""JSON errors of the HTTP API: one shape for every failure, and the middleware that makes it.

Every error response is ``{"error": {"code": ..., "message": ..., "details": [...],
"request_id": ...}}`` (``details`` only when there are some). Handlers raise
:class:`ApiError`; aiohttp's own HTTP exceptions (an unknown route, a wrong method) are turned
into the same shape; any other exception becomes a 500 that carries the request id and is logged
with its traceback, so that one bad request never takes the server down.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

__all__ = [
    "REQUEST_ID",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_middleware",
    "error_response",
    "request_id_of",
]

log = logging.getLogger("trunkline.web")

REQUEST_ID = "X-Request-Id"
"""The header carrying a request's id, in both directions (a client's own id is kept)."""

_REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("trunkline.web.request_id", str)
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# HTTP statuses aiohttp raises itself, as error codes.
_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ErrorDetail(BaseModel):
    """The error itself."""

    code: str
    message: str
    details: list[Any] | None = None
    request_id: str | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """Raise it from a handler to answer with an error.

    Args:
        status: the HTTP status.
        code: a stable, machine-readable code (``"invalid_request"``).
        message: for people.
        details: more, e.g. the fields that failed validation.
    """

    def __init__(
        self, status: int, code: str, message: str, details: Sequence[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = None if details is None else list(details)


def request_id_of(request: web.Request) -> str:
    """The request's id: the client's ``X-Request-Id`` when sane, else a new random one."""
    existing = request.get(_REQUEST_ID_KEY)
    if isinstance(existing, str):
        return existing
    given = request.headers.get(REQUEST_ID, "")
    request_id = given if _VALID_ID.fullmatch(given) else secrets.token_hex(8)
    request[_REQUEST_ID_KEY] = request_id
    return request_id


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    details: Sequence[Any] | None = None,
) -> web.Response:
    """A JSON error response in the shape of :class:`ErrorBody`."""
    detail = ErrorDetail(
        code=code,
        message=message,
        details=None if details is None else list(details),
        request_id=request_id_of(request),
    )
    return web.Response(
        status=status,
        text=ErrorBody(error=detail).model_dump_json(exclude_none=True),
        content_type="application/json",
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure of ``handler`` into a JSON error (see the module documentation)."""
    try:
        response = await handler(request)
    except ApiError as error:
        response = error_response(request, error.status, error.code, error.message, error.details)
    except web.HTTPException as error:
        if error.status < 400:
            raise  # redirects and the like are answers, not errors
        code = _CODES.get(error.status, "http_error")
        message = error.reason if error.status != 404 else f"no route for {request.path}"
        response = error_response(request, error.status, code, message)
        for header in ("Allow",):
            if header in error.headers:
                response.headers[header] = error.headers[header]
    except Exception:
        request_id = request_id_of(request)
        log.exception(
            "%s %s failed (request %s)",
            request.method,
            request.path,
            request_id,
            extra={"request_id": request_id, "method": request.method, "path": request.path},
        )
        response = error_response(
            request, 500, "internal_error", f"internal server error (request {request_id})"
        )
    if not response.prepared:  # a WebSocket or a stream has sent its headers already
        response.headers[REQUEST_ID] = request_id_of(request)
    return response
