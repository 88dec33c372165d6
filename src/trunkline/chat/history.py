"""A room's history: pages by sequence number, and what a reconnecting client missed.

Both read the index of ``(room_id, seq)``: a page costs its own rows, however long the room's
history. Deleted messages are returned as tombstones (empty body, ``deleted_at`` set), so a
client sees every number and knows it has missed nothing.

These functions do not check who is asking: the caller does, with
:func:`~trunkline.chat.rooms.require_member`, before it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline import db

from .exceptions import InvalidInput
from .messages import _COLUMNS, Message
from .rooms import Queryable, _check_limit

__all__ = ["MAX_HISTORY_LIMIT", "Resume", "history", "since"]

MAX_HISTORY_LIMIT = 200
"""The most messages one call of :func:`history` or :func:`since` returns."""


@dataclass(frozen=True)
class Resume:
    """What :func:`since` found: the messages after the client's last, in order, and whether
    that is all of them (``complete``); if not, ask again from the last one returned."""

    messages: list[Message]
    complete: bool


# Newest first, then put back in order: the page just before a cursor (or the latest).
_BEFORE = db.Query(
    "chat.history.before",
    f"SELECT {_COLUMNS} FROM chat_messages WHERE room_id = $1 AND seq > $2 AND seq < $3 "
    "ORDER BY seq DESC LIMIT $4",
)
_AFTER = db.Query(
    "chat.history.after",
    f"SELECT {_COLUMNS} FROM chat_messages WHERE room_id = $1 AND seq > $2 AND seq < $3 "
    "ORDER BY seq LIMIT $4",
)

# Past any sequence number a room can reach.
_END = 2**63 - 1


async def history(
    database: Queryable,
    room_id: int,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[Message]:
    """A page of the room's messages, in order of ``seq``.

    - neither cursor: the latest ``limit`` messages;
    - ``before``: the ``limit`` messages just before that number (scrolling back);
    - ``after``: the ``limit`` messages just after it (catching up), also bounded by
      ``before`` when both are given.

    ``limit`` is capped at :data:`MAX_HISTORY_LIMIT`.

    Raises:
        InvalidInput: a limit below 1, or a cursor that is not a non-negative integer.
    """
    limit = _check_limit(limit, MAX_HISTORY_LIMIT)
    low = 0 if after is None else _check_cursor(after, "after")
    high = _END if before is None else _check_cursor(before, "before")
    if after is not None:
        rows = await database.fetch(_AFTER, room_id, low, high, limit)
        return [Message.from_row(row) for row in rows]
    rows = await database.fetch(_BEFORE, room_id, low, high, limit)
    return [Message.from_row(row) for row in reversed(rows)]


async def since(
    database: Queryable, room_id: int, seq: int, limit: int = MAX_HISTORY_LIMIT
) -> Resume:
    """The messages after ``seq`` (the last one the client has), in order, at most ``limit``
    (capped at :data:`MAX_HISTORY_LIMIT`), and whether they are all there is.

    Raises:
        InvalidInput: a limit below 1, or ``seq`` not a non-negative integer.
    """
    limit = _check_limit(limit, MAX_HISTORY_LIMIT)
    seq = _check_cursor(seq, "since")
    rows = await database.fetch(_AFTER, room_id, seq, _END, limit + 1)
    return Resume([Message.from_row(row) for row in rows[:limit]], complete=len(rows) <= limit)


def _check_cursor(value: object, field: str) -> int:
    if type(value) is not int or value < 0:
        raise InvalidInput(field, "wrong_type", f"a sequence number is an integer >= 0: {value!r}")
    return value
