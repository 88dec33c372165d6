"""The chat WebSocket protocol, version 1: the frames, their validation and their encoding.

Pure functions, no I/O: :func:`parse_request` turns a client's text frame into one of the
request classes below or raises :class:`FrameError` with the error's code; the ``encode_*``
functions build the server's frames. The connection process
(:mod:`trunkline.chat.connection`) does the rest. ``docs/chat.md`` ("WebSocket protocol")
describes every frame with an example.

Every frame is one JSON object in a text frame. A client request has an ``"id"`` (a string of
at most 64 characters or an integer, echoed in the reply) and an ``"op"``; the reply is
``{"id": ..., "ok": true, ...}`` or ``{"id": ..., "error": {"code", "message", "retry"}}``.
Server pushes have a ``"type"`` instead of an ``"id"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .messages import Message

__all__ = [
    "ERROR_CODES",
    "MAX_REQUEST_ID_CHARS",
    "PROTOCOL_VERSION",
    "Auth",
    "Delete",
    "Edit",
    "FrameError",
    "Join",
    "Leave",
    "Ping",
    "Read",
    "Request",
    "RequestId",
    "Send",
    "Typing",
    "encode",
    "encode_error",
    "encode_message_reply",
    "encode_push",
    "encode_reply",
    "message_fields",
    "message_json",
    "parse_request",
]

PROTOCOL_VERSION = 1

MAX_REQUEST_ID_CHARS = 64

ERROR_CODES = frozenset(
    {
        "bad_frame",  # not JSON, or not a JSON object, or not a text frame
        "unknown_op",  # "op" missing or not one of the operations
        "invalid",  # a field missing, of the wrong type or out of range
        "unauthenticated",  # no "auth" yet, or a token that does not work
        "forbidden",  # not allowed (another's message, a moderation rule...)
        "not_member",  # the room is not one of the user's (or does not exist)
        "not_joined",  # the operation needs the room joined on this connection first
        "not_found",  # no such message
        "muted",  # the user is muted in the room
        "banned",  # the user is banned from the room
        "rate_limited",  # too many operations: retry later
        "too_large",  # the frame or the message body is too long
        "too_many_rooms",  # the connection has joined as many rooms as it may
        "internal",  # the server failed; retry may help
    }
)
"""Every ``error.code`` the server sends."""

RequestId = str | int | None


class FrameError(Exception):
    """A request that cannot be served: its ``code`` (one of :data:`ERROR_CODES`), a message
    for people, the request's id when it had a usable one, and whether retrying the same
    request may succeed."""

    def __init__(
        self, code: str, message: str, request_id: RequestId = None, *, retry: bool = False
    ) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry = retry

    def __repr__(self) -> str:
        return f"FrameError({self.code!r}, {self.message!r}, request_id={self.request_id!r})"

    def encode(self) -> str:
        return encode_error(self.request_id, self.code, self.message, retry=self.retry)


@dataclass(frozen=True, slots=True)
class Auth:
    id: RequestId
    token: str


@dataclass(frozen=True, slots=True)
class Join:
    id: RequestId
    room: int
    since: int | None


@dataclass(frozen=True, slots=True)
class Leave:
    id: RequestId
    room: int


@dataclass(frozen=True, slots=True)
class Send:
    id: RequestId
    room: int
    body: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Edit:
    id: RequestId
    room: int
    seq: int
    body: str


@dataclass(frozen=True, slots=True)
class Delete:
    id: RequestId
    room: int
    seq: int


@dataclass(frozen=True, slots=True)
class Typing:
    id: RequestId
    room: int


@dataclass(frozen=True, slots=True)
class Read:
    id: RequestId
    room: int
    seq: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId


Request = Auth | Join | Leave | Send | Edit | Delete | Typing | Read | Ping

# op -> (class, its fields after "id": name -> (kind, required)).
_STR, _INT, _OPT_INT = "string", "integer >= 0", "integer >= 0 or null"
_OPS: dict[str, tuple[type[Any], dict[str, str]]] = {
    "auth": (Auth, {"token": _STR}),
    "join": (Join, {"room": _INT, "since": _OPT_INT}),
    "leave": (Leave, {"room": _INT}),
    "send": (Send, {"room": _INT, "body": _STR, "client_msg_id": _STR}),
    "edit": (Edit, {"room": _INT, "seq": _INT, "body": _STR}),
    "delete": (Delete, {"room": _INT, "seq": _INT}),
    "typing": (Typing, {"room": _INT}),
    "read": (Read, {"room": _INT, "seq": _INT}),
    "ping": (Ping, {}),
}
_ALLOWED = {op: {"id", "op", *fields} for op, (_, fields) in _OPS.items()}

# Past what a sequence number or a room id can be (a 64-bit column).
_MAX_INT = 2**63 - 1


def parse_request(text: str) -> Request:
    """The request a client's text frame holds.

    Raises:
        FrameError: ``bad_frame`` (not JSON, not an object), ``invalid`` (a bad ``id``, a
            missing or mistyped field, an unknown field), ``unknown_op``. The error carries
            the request's id when the frame had a usable one.
    """
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("bad_frame", "a frame is one JSON object") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "a frame is one JSON object, not " + _kind(frame))
    request_id = frame.get("id")
    if not _is_request_id(request_id):
        raise FrameError(
            "invalid",
            f"'id' is a string of at most {MAX_REQUEST_ID_CHARS} characters or an integer",
        )
    op = frame.get("op")
    if not isinstance(op, str) or op not in _OPS:
        shown = repr(op)[:40] if op is not None else "missing"
        raise FrameError("unknown_op", f"unknown op: {shown}", request_id)
    cls, fields = _OPS[op]
    unknown = frame.keys() - _ALLOWED[op]
    if unknown:
        names = ", ".join(sorted(repr(name)[:40] for name in unknown)[:5])
        raise FrameError("invalid", f"{op}: unknown field(s) {names}", request_id)
    values: dict[str, Any] = {"id": request_id}
    for name, kind in fields.items():
        value = frame.get(name)
        if kind == _STR:
            ok = isinstance(value, str)
        elif kind == _INT:
            ok = type(value) is int and 0 <= value <= _MAX_INT
        else:
            ok = value is None or (type(value) is int and 0 <= value <= _MAX_INT)
        if not ok:
            got = "missing" if name not in frame else _kind(value)
            raise FrameError("invalid", f"{op}: '{name}' is a {kind}, got {got}", request_id)
        values[name] = value
    request: Request = cls(**values)
    return request


def encode(frame: dict[str, Any]) -> str:
    """A frame's text: compact JSON, not ASCII-escaped."""
    return _json(frame)


def _json(value: Any) -> str:
    # orjson writes compact JSON with non-ASCII characters as they are, as the protocol
    # wants, some ten times faster than the json module: it encodes every frame.
    return orjson.dumps(value).decode()


def encode_reply(request_id: RequestId, **fields: Any) -> str:
    """``{"id": request_id, "ok": true, **fields}``."""
    return encode({"id": request_id, "ok": True, **fields})


def encode_error(request_id: RequestId, code: str, message: str, *, retry: bool = False) -> str:
    """``{"id": request_id, "error": {"code", "message", "retry"}}``."""
    return encode({"id": request_id, "error": {"code": code, "message": message, "retry": retry}})


def encode_push(kind: str, message: Message, server_time: datetime) -> str:
    """A push of a room's message: ``kind`` is ``"message"`` (a new one), ``"edit"`` or
    ``"delete"`` (a new version of message ``seq``); as :func:`encode` would write
    ``{"type", "room", "seq", "message", "server_time"}``."""
    return (
        f'{{"type":{_json(kind)},"room":{message.room_id},"seq":{message.seq},'
        f'"message":{message_json(message)},"server_time":{_json(server_time)}}}'
    )


def encode_message_reply(request_id: RequestId, message: Message, *, send: bool = False) -> str:
    """The reply to an edit or a deletion, ``{"id", "ok", "message"}`` as :func:`encode_reply`
    would write it; to a send (``send``), with ``"duplicate"`` before ``"message"``."""
    duplicate = ""
    if send:
        duplicate = '"duplicate":true,' if message.duplicate else '"duplicate":false,'
    return f'{{"id":{_json(request_id)},"ok":true,{duplicate}"message":{message_json(message)}}}'


def message_json(message: Message) -> str:
    """:func:`message_fields` as JSON, encoded once per message: the push to a room and the
    reply to its sender carry the same text (kept on the message, outside its fields)."""
    text: str | None = message.__dict__.get("_json")
    if text is None:
        # The times as datetimes: orjson writes them as isoformat() would, four times faster.
        text = _json(
            {
                "id": message.id,
                "room": message.room_id,
                "seq": message.seq,
                "sender": message.sender_id,
                "client_msg_id": message.client_msg_id,
                "body": message.body,
                "created_at": message.created_at,
                "edited_at": message.edited_at,
                "deleted_at": message.deleted_at,
                "version": message.version,
            }
        )
        object.__setattr__(message, "_json", text)  # a cache, not a field: frozen is kept
    return text


def message_fields(message: Message) -> dict[str, Any]:
    """A stored message as the protocol shows it (times as ISO 8601 text)."""
    fields: dict[str, Any] = orjson.loads(message_json(message))
    return fields


def _is_request_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return len(value) <= MAX_REQUEST_ID_CHARS
    return type(value) is int and abs(value) <= _MAX_INT


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
