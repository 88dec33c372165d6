"""Messages: store one with the room's next sequence number, edit it, delete it.

**Sequence numbers.** A room's messages are numbered 1, 2, 3... with no gap: :func:`append`
reads the room's highest ``seq`` and inserts the next one in one statement, inside one
transaction; the unique ``(room_id, seq)`` guards it. One writer per room calls it - the
room's process, which serializes a room's sends - so a conflict is rare; but two writers (two
nodes that both believe they run the room, for a moment) are still safe: the second insert
finds the number taken (``ON CONFLICT DO NOTHING``, after waiting for the first to commit on
PostgreSQL), stores nothing, and is tried again with the next number. A rolled-back append
takes its number back with it, so no gap opens.

**Idempotence.** ``(room_id, sender_id, client_msg_id)`` is unique: a send retried after a
lost acknowledgement returns the message stored the first time, flagged
``duplicate=True``, and stores nothing (even if the body differs, or the sender has been
muted since).

**Permissions.** :func:`append` and :func:`edit_message` check that the sender is a member of
the room and not muted (:class:`NotMember`, :class:`Muted`), in the same transaction as the
write.

**Edits and deletions** change the row in place and keep its ``seq``: ``version`` counts the
changes (1 when stored), ``edited_at`` marks an edit, and a deletion is a tombstone (the body
emptied, ``deleted_at`` set) that history still returns, so resuming stays gapless. They are
pushed to clients with the message's original ``seq`` and its new ``version``: a client keeps
the highest version of each ``seq``. Only the sender edits; the sender, the room's owner and
its admins delete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from trunkline import db

from .exceptions import ChatError, Forbidden, InvalidInput, Muted, NotFound
from .rooms import Queryable, _now, require_member

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_CLIENT_MSG_ID_CHARS",
    "Message",
    "append",
    "check_body",
    "delete_message",
    "edit_message",
    "get_message",
]

MAX_BODY_CHARS = 4000
"""The longest message body :func:`append` takes unless told otherwise (``max_chars``)."""
MAX_CLIENT_MSG_ID_CHARS = 128

# How often append tries the next number after losing it to another writer. Each retry means
# another writer committed a message meanwhile, so running out takes a storm of writers.
_ATTEMPTS = 100


@dataclass(frozen=True)
class Message:
    """A stored message. ``duplicate`` is true when :func:`append` found it already stored
    (a retried send); a deleted message has an empty ``body`` and a ``deleted_at``."""

    id: int
    room_id: int
    seq: int
    sender_id: int
    client_msg_id: str
    body: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    version: int
    duplicate: bool = False

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @classmethod
    def from_row(cls, row: db.Row) -> Message:
        return cls(*tuple(row))


_COLUMNS = (
    "id, room_id, seq, sender_id, client_msg_id, body, created_at, edited_at, deleted_at, version"
)

# The next number and the insert in one statement. PostgreSQL needs the parameters' types in a
# SELECT list; SQLite needs "WHERE" before "ON CONFLICT" in an INSERT ... SELECT, and must not
# be told CAST(... AS TIMESTAMPTZ) (it would read the text as a number).
_INSERT = db.Query(
    "chat.messages.append",
    postgresql=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT $1::bigint, COALESCE(MAX(seq), 0) + 1, $2::bigint, $3::text, $4::text,
               $5::timestamptz
        FROM chat_messages WHERE room_id = $1
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
    sqlite=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5
        FROM chat_messages WHERE room_id = $1
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
)
# The common case of a send in one statement, so one round trip and one commit: stored only
# if the sender is a member and not muted, as the next number; nothing returned otherwise
# (not a member, muted, a retry, a number taken), and ``append`` finds out which the long way.
_MUTE_OVER = "(NOT m.muted OR (m.muted_until IS NOT NULL AND m.muted_until <= $5))"
_APPEND_IF_ALLOWED = db.Query(
    "chat.messages.append_if_allowed",
    postgresql=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT $1::bigint,
               (SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE room_id = $1),
               $2::bigint, $3::text, $4::text, $5::timestamptz
        FROM chat_room_members m
        WHERE m.room_id = $1 AND m.user_id = $2 AND {_MUTE_OVER}
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
    sqlite=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT $1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE room_id = $1),
               $2, $3, $4, $5
        FROM chat_room_members m
        WHERE m.room_id = $1 AND m.user_id = $2 AND {_MUTE_OVER}
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
)
_BY_CLIENT_ID = db.Query(
    "chat.messages.by_client_id",
    f"SELECT {_COLUMNS} FROM chat_messages "
    "WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3",
)
_BY_SEQ = db.Query(
    "chat.messages.get",
    f"SELECT {_COLUMNS} FROM chat_messages WHERE room_id = $1 AND seq = $2",
)
_EDIT = db.Query(
    "chat.messages.edit",
    "UPDATE chat_messages SET body = $3, edited_at = $4, version = version + 1 "
    f"WHERE room_id = $1 AND seq = $2 RETURNING {_COLUMNS}",
)
_DELETE = db.Query(
    "chat.messages.delete",
    "UPDATE chat_messages SET body = '', deleted_at = $3, version = version + 1 "
    f"WHERE room_id = $1 AND seq = $2 RETURNING {_COLUMNS}",
)


def check_body(body: Any, max_chars: int = MAX_BODY_CHARS) -> str:
    """``body`` if it may be stored: a string of 1 to ``max_chars`` characters, not only white
    space, with no NUL, Unicode text.

    Raises:
        InvalidInput: field ``"body"``, code ``"wrong_type"``, ``"empty"``, ``"too_long"``,
            ``"control_characters"`` or ``"not_unicode"``.
    """
    if not isinstance(body, str):
        raise InvalidInput("body", "wrong_type", "a message body is a string")
    if not body.strip():
        raise InvalidInput("body", "empty", "a message body cannot be empty")
    if len(body) > max_chars:
        raise InvalidInput("body", "too_long", f"a message body has at most {max_chars} characters")
    if "\x00" in body:
        raise InvalidInput("body", "control_characters", "a message body cannot hold NUL")
    if not _is_unicode(body):
        raise InvalidInput("body", "not_unicode", _NOT_UNICODE)
    return body


def _check_client_msg_id(client_msg_id: Any) -> str:
    if not isinstance(client_msg_id, str):
        raise InvalidInput("client_msg_id", "wrong_type", "a client message id is a string")
    if not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID_CHARS:
        raise InvalidInput(
            "client_msg_id",
            "too_long" if client_msg_id else "empty",
            f"a client message id has 1 to {MAX_CLIENT_MSG_ID_CHARS} characters",
        )
    if "\x00" in client_msg_id:
        raise InvalidInput(
            "client_msg_id", "control_characters", "a client message id cannot hold NUL"
        )
    if not _is_unicode(client_msg_id):
        raise InvalidInput("client_msg_id", "not_unicode", _NOT_UNICODE)
    return client_msg_id


_NOT_UNICODE = "text cannot hold a lone surrogate (a JSON escape such as \\ud800)"


def _is_unicode(text: str) -> bool:
    """Whether ``text`` is Unicode text - no lone surrogate, which a JSON ``\\u`` escape can
    carry in - and so can be stored and sent as UTF-8."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def append(
    database: Queryable,
    room_id: int,
    sender_id: int,
    body: str,
    client_msg_id: str,
    *,
    max_chars: int = MAX_BODY_CHARS,
) -> Message:
    """Store a message as the room's next one; see the module for the guarantees.

    Args:
        database: a database (each attempt is a transaction of its own) or a transaction
            (the message is stored, or not, with it).
        client_msg_id: the sender's id for this send, 1 to 128 characters; a retry with the
            same one returns the first message.
        max_chars: the longest body taken.

    Returns:
        The stored message; ``duplicate=True`` when it was stored by an earlier call.

    Raises:
        InvalidInput: a bad body or client message id; nothing is stored.
        NotFound: no such room.
        NotMember: the sender is not in the room.
        Muted: the sender is muted in the room.
        ChatError: no number could be had in 100 attempts (a storm of writers on one room).
    """
    body = check_body(body, max_chars)
    client_msg_id = _check_client_msg_id(client_msg_id)
    row = await database.fetch_one(
        _APPEND_IF_ALLOWED, room_id, sender_id, client_msg_id, body, _now()
    )
    if row is not None:
        return Message.from_row(row)
    for _ in range(_ATTEMPTS):
        async with _atomic(database) as tx:
            stored = await tx.fetch_one(_BY_CLIENT_ID, room_id, sender_id, client_msg_id)
            if stored is not None:
                return replace(Message.from_row(stored), duplicate=True)
            sender = await require_member(tx, room_id, sender_id)
            at = _now()
            if sender.is_muted(at):
                raise Muted(room_id, sender_id, sender.muted_until)
            row = await tx.fetch_one(_INSERT, room_id, sender_id, client_msg_id, body, at)
            if row is not None:
                return Message.from_row(row)
        # Another writer took the number (or stored this very send): look again.
    raise ChatError(
        f"room {room_id}: no sequence number after {_ATTEMPTS} attempts; too many writers"
    )


async def get_message(database: Queryable, room_id: int, seq: int) -> Message:
    """The message ``seq`` of the room (a tombstone if it was deleted).

    Raises:
        NotFound: no such message (``what="message"``, ``key=(room_id, seq)``).
    """
    row = await database.fetch_one(_BY_SEQ, room_id, seq)
    if row is None:
        raise NotFound("message", (room_id, seq))
    return Message.from_row(row)


async def edit_message(
    database: Queryable,
    room_id: int,
    seq: int,
    user_id: int,
    body: str,
    *,
    max_chars: int = MAX_BODY_CHARS,
) -> Message:
    """``user_id`` replaces the body of their message ``seq``; its version goes up by one.

    Raises:
        InvalidInput: a bad body; nothing changes.
        NotFound: no such room or message.
        NotMember: the user is not in the room.
        Muted: the user is muted in the room.
        Forbidden: not the user's message, or a deleted one.
    """
    body = check_body(body, max_chars)
    async with database.transaction() as tx:
        editor = await require_member(tx, room_id, user_id)
        at = _now()
        if editor.is_muted(at):
            raise Muted(room_id, user_id, editor.muted_until)
        message = await get_message(tx, room_id, seq)
        if message.sender_id != user_id:
            raise Forbidden("edit", "only its sender edits a message")
        if message.deleted:
            raise Forbidden("edit", "the message was deleted")
        row = await tx.fetch_one(_EDIT, room_id, seq, body, at)
        assert row is not None
    return Message.from_row(row)


async def delete_message(database: Queryable, room_id: int, seq: int, user_id: int) -> Message:
    """``user_id`` deletes message ``seq``: it becomes a tombstone (empty body,
    ``deleted_at`` set, ``seq`` kept, version up by one). Deleting a tombstone again changes
    nothing and returns it.

    Raises:
        NotFound: no such room or message.
        NotMember: the user is not in the room.
        Forbidden: neither the sender nor an owner or admin of the room.
    """
    async with database.transaction() as tx:
        deleter = await require_member(tx, room_id, user_id)
        message = await get_message(tx, room_id, seq)
        if message.sender_id != user_id and not deleter.moderates:
            raise Forbidden("delete", "only its sender, an owner or an admin deletes a message")
        if message.deleted:
            return message
        row = await tx.fetch_one(_DELETE, room_id, seq, _now())
        assert row is not None
    return Message.from_row(row)


@asynccontextmanager
async def _atomic(database: Queryable) -> AsyncIterator[Queryable]:
    # A transaction per attempt on a database; on a caller's transaction, its own statements
    # (on PostgreSQL each sees what committed before it, so a retry finds the new number).
    if isinstance(database, db.Transaction):
        yield database
    else:
        async with database.transaction() as tx:
            yield tx
