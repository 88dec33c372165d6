"""Who is asking, and what went wrong: the bearer tokens and the errors of the chat HTTP API.

- :func:`authenticated` reads ``Authorization: Bearer <token>`` and asks
  :func:`trunkline.chat.authenticate` (once per request); without a working token it raises
  ``401 unauthenticated`` with ``WWW-Authenticate: Bearer`` and the ``reason``: ``missing``,
  ``unknown``, ``expired`` or ``revoked``.
- :func:`chat_error_middleware` answers every error of a route under ``/api/v1/`` in the
  shape of :class:`~trunkline.web.chat_models.ChatErrorBody`: the common error fields plus
  ``retry`` (whether the same request may succeed later) and what the error has to say
  (``field``, ``reason``, ``retry_after_s``...). The chat services' errors map to statuses in
  :func:`chat_error_of`; the API layer's own (a body that is not JSON, a wrong type) keep
  their status and gain ``retry: false``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from trunkline import chat

from .chat_models import ChatErrorBody, ChatErrorDetail
from .errors import ApiError, request_id_of

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = [
    "API_PREFIX",
    "ChatApiError",
    "authenticated",
    "bearer_token",
    "chat_error_middleware",
    "chat_error_of",
]

API_PREFIX = "/api/v1/"
"""Where the chat API's routes are; the errors of these paths get its shape."""

_AUTHENTICATED: web.RequestKey[chat.Authenticated] = web.RequestKey(
    "trunkline.web.chat.authenticated", chat.Authenticated
)
_TOKEN: web.RequestKey[str] = web.RequestKey("trunkline.web.chat.token", str)


class ChatApiError(Exception):
    """An error answer of the chat API (see :class:`~trunkline.web.chat_models.ChatErrorDetail`).

    Args:
        status: the HTTP status.
        code: the stable code (``"not_found"``).
        message: for people.
        retry: whether the same request may succeed later.
        headers: headers of the answer (``Retry-After``, ``WWW-Authenticate``).
        details, field, reason, what, retry_after_s, until: see the model.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry: bool = False,
        headers: dict[str, str] | None = None,
        details: list[object] | None = None,
        field: str | None = None,
        reason: str | None = None,
        what: str | None = None,
        retry_after_s: float | None = None,
        until: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.detail = ChatErrorDetail(
            code=code,
            message=message,
            retry=retry,
            details=details,
            field=field,
            reason=reason,
            what=what,
            retry_after_s=retry_after_s,
            until=until,
        )

    def response(self, request: web.Request) -> web.Response:
        """The error as a JSON response to ``request`` (with its request id)."""
        detail = self.detail.model_copy(update={"request_id": request_id_of(request)})
        return web.Response(
            status=self.status,
            text=ChatErrorBody(error=detail).model_dump_json(exclude_none=True),
            content_type="application/json",
            headers=self.headers,
        )


def _unauthenticated(reason: str, message: str) -> ChatApiError:
    # RFC 6750: no token at all gets a bare challenge; a bad one says invalid_token.
    challenge = 'Bearer realm="trunkline"'
    if reason != "missing":
        challenge += ', error="invalid_token"'
    return ChatApiError(
        401,
        "unauthenticated",
        message,
        reason=reason,
        headers={"WWW-Authenticate": challenge},
    )


def chat_error_of(error: chat.ChatError) -> ChatApiError:
    """The answer to a chat service's error: its status, code and fields."""
    message = str(error)
    if isinstance(error, chat.InvalidInput):
        return ChatApiError(
            400, "invalid_input", error.message, field=error.field, reason=error.code
        )
    if isinstance(error, chat.UsernameTaken):
        return ChatApiError(409, "username_taken", message, field="username")
    if isinstance(error, chat.InvalidCredentials):
        return ChatApiError(401, "invalid_credentials", message)
    if isinstance(error, chat.InvalidToken):
        return _unauthenticated(error.reason, f"the token is {error.reason}: log in again")
    if isinstance(error, chat.TooManyAttempts):
        return ChatApiError(
            429,
            "too_many_attempts",
            message,
            retry=True,
            reason=error.scope,
            retry_after_s=error.retry_after_s,
            headers={"Retry-After": str(max(1, math.ceil(error.retry_after_s)))},
        )
    if isinstance(error, chat.NotFound):
        return ChatApiError(404, "not_found", message, what=error.what)
    if isinstance(error, chat.NotMember):
        return ChatApiError(403, "not_member", message)
    if isinstance(error, chat.Banned):
        return ChatApiError(403, "banned", message, until=error.until)
    if isinstance(error, chat.Muted):
        return ChatApiError(403, "muted", message, until=error.until)
    if isinstance(error, chat.Forbidden):
        return ChatApiError(403, "forbidden", message, reason=error.action)
    # What remains is contention (a room's number taken 100 times over): try again.
    return ChatApiError(409, "conflict", message, retry=True)


def bearer_token(request: web.Request) -> str:
    """The request's bearer token.

    Raises:
        ChatApiError: ``401 unauthenticated`` (reason ``missing``): no ``Authorization:
            Bearer`` header.
    """
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated(
            "missing", "this route needs a token: send Authorization: Bearer <token>"
        )
    return token


async def authenticated(request: web.Request, context: NodeContext) -> chat.Authenticated:
    """The user and device of the request's bearer token (looked up once per request).

    Raises:
        ChatApiError: ``401 unauthenticated``: no token, or one that is unknown, expired or
            revoked (``reason``).
    """
    if _AUTHENTICATED in request:
        return request[_AUTHENTICATED]
    token = bearer_token(request)
    try:
        found = await chat.authenticate(
            context.require_database(), token, token_ttl_s=context.settings.chat.token_ttl_s
        )
    except chat.InvalidToken as error:
        raise chat_error_of(error) from None
    request[_AUTHENTICATED] = found
    request[_TOKEN] = token
    return found


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
def chat_error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Answer the errors of the chat API's routes in its shape (see the module). Other
    routes' handlers are handed on, not awaited here: a chat socket's lives as long as the
    socket, and would hold a frame of this middleware all that time."""
    if not request.path.startswith(API_PREFIX):
        return handler(request)
    return _in_chat_shape(request, handler)


async def _in_chat_shape(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ChatApiError as error:
        return error.response(request)
    except chat.ChatError as error:
        return chat_error_of(error).response(request)
    except ApiError as error:
        return _from_api_error(error).response(request)


def _from_api_error(error: ApiError) -> ChatApiError:
    """The API layer's own errors (before the handler ran) in the chat API's shape: a body
    that fails its model is ``invalid_input``, naming the first field at fault."""
    if error.status == 400 and error.details:
        first = error.details[0]
        location = first.get("loc", []) if isinstance(first, dict) else []
        field = ".".join(str(part) for part in location) or None
        return ChatApiError(
            400,
            "invalid_input",
            error.message,
            details=error.details,
            field=field,
            reason=first.get("type") if isinstance(first, dict) else None,
        )
    return ChatApiError(error.status, error.code, error.message, details=error.details)
