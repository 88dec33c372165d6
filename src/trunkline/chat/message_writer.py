"""The node's message writer: the sends of every room, stored a batch at a time.

A room's process stores each message before it acknowledges it, and waits for that: with
many rooms busy at once, a statement per message would cost each message a transaction, a
commit and a trip to the database of its own - on SQLite, two hand-offs between the event
loop and the writer thread, which cost more than the insert. The writer stores what the
rooms hand it together instead. While one batch is being written the next one collects, so a
lone message goes at once and a batch grows with the load (group commit, without a timer).

A batch is one statement - an ``INSERT ... SELECT`` over the batch's rows, with the checks of
``append``'s common case on each: the sender is a member of the room and not muted, and the
message takes the room's next number - and the stored rows come back from it. A batch holds
at most one message per room: the room's next number is read before the statement inserts,
and a room's process has one send in flight anyway. What the statement did not store (a
sender who is not a member or is muted, a retried ``client_msg_id``, a number another node
took first) goes the careful way, :func:`~trunkline.chat.messages.append` on its own, which
finds out which and answers as it always does. So does every message of a batch whose
statement failed: one bad row must not fail the others.

The guarantees are ``append``'s: a message is acknowledged once stored (its batch
committed), numbers have no gap, and a retried ``client_msg_id`` is stored once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from trunkline import db

from .messages import (
    _COLUMNS,
    _MUTE_OVER,
    MAX_BODY_CHARS,
    Message,
    _check_client_msg_id,
    append,
    check_body,
)
from .rooms import _now

__all__ = ["MAX_BATCH", "MessageWriter"]

log = logging.getLogger("trunkline.chat")

MAX_BATCH = 256
"""The most messages one statement stores."""

_MUTE_OVER_BATCH = _MUTE_OVER.replace("$5", "$1")

# The batch's rows come as one JSON array of [room, sender, client id, body] on SQLite (one
# statement whatever the batch's size, so SQLite prepares it once), as arrays on PostgreSQL.
_APPEND_BATCH = db.Query(
    "chat.messages.append_batch",
    postgresql=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT b.room_id,
               (SELECT COALESCE(MAX(c.seq), 0) + 1 FROM chat_messages c
                WHERE c.room_id = b.room_id),
               b.sender_id, b.client_msg_id, b.body, $1::timestamptz
        FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[])
             AS b(room_id, sender_id, client_msg_id, body)
        JOIN chat_room_members m ON m.room_id = b.room_id AND m.user_id = b.sender_id
        WHERE {_MUTE_OVER_BATCH}
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
    sqlite=f"""
        INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
        SELECT b.room_id,
               (SELECT COALESCE(MAX(c.seq), 0) + 1 FROM chat_messages c
                WHERE c.room_id = b.room_id),
               b.sender_id, b.client_msg_id, b.body, $1
        FROM (SELECT value ->> 0 AS room_id, value ->> 1 AS sender_id,
                     value ->> 2 AS client_msg_id, value ->> 3 AS body
              FROM json_each($2)) AS b
        JOIN chat_room_members m ON m.room_id = b.room_id AND m.user_id = b.sender_id
        WHERE {_MUTE_OVER_BATCH}
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}""",
)


class _Send:
    __slots__ = ("body", "client_msg_id", "database", "future", "room_id", "sender_id")

    def __init__(
        self,
        database: db.Database,
        room_id: int,
        sender_id: int,
        body: str,
        client_msg_id: str,
        future: asyncio.Future[Message | None],
    ) -> None:
        self.database = database
        self.room_id = room_id
        self.sender_id = sender_id
        self.body = body
        self.client_msg_id = client_msg_id
        self.future = future


class MessageWriter:
    """Stores messages in batches; see the module documentation. One per chat tree, shared
    by its room processes."""

    def __init__(self) -> None:
        self._waiting: list[_Send] = []
        self._writing: asyncio.Task[None] | None = None

    async def append(
        self,
        database: db.Database,
        room_id: int,
        sender_id: int,
        body: str,
        client_msg_id: str,
        *,
        max_chars: int = MAX_BODY_CHARS,
    ) -> Message:
        """Store a message as the room's next one, in the next batch: as
        :func:`~trunkline.chat.messages.append`, with the same errors."""
        body = check_body(body, max_chars)
        client_msg_id = _check_client_msg_id(client_msg_id)
        future: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Send(database, room_id, sender_id, body, client_msg_id, future))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())
        message = await future
        if message is None:
            # Not stored by the batch: the careful way says why, or stores it.
            return await append(
                database, room_id, sender_id, body, client_msg_id, max_chars=max_chars
            )
        return message

    async def _write(self) -> None:
        batch: list[_Send] = []
        try:
            while batch := self._take_batch():
                await self._store(batch)
        except BaseException as error:
            # A bug, or the loop closing: nobody may be left waiting, in the batch being
            # written or after it.
            for send in (*batch, *self._waiting):
                if send.future.done():
                    continue
                if isinstance(error, asyncio.CancelledError):
                    send.future.cancel()
                else:
                    send.future.set_exception(error)
            self._waiting = []
            if isinstance(error, asyncio.CancelledError):
                raise
            # Its callers have the error; the task is nobody's to await.
            log.error("the message writer failed", exc_info=True)
        finally:
            self._writing = None

    def _take_batch(self) -> list[_Send]:
        """The next batch: the waiting sends, in order, at most one per room and only those
        on the first one's database; the rest wait for the next."""
        waiting = self._waiting
        if len(waiting) <= 1:
            self._waiting = []
            return [send for send in waiting if not send.future.done()]
        database = waiting[0].database
        rooms: set[int] = set()
        batch: list[_Send] = []
        later: list[_Send] = []
        for send in waiting:
            if send.future.done():
                continue  # its caller gave up before it was written
            if send.room_id in rooms or send.database is not database or len(batch) >= MAX_BATCH:
                later.append(send)
            else:
                rooms.add(send.room_id)
                batch.append(send)
        self._waiting = later
        return batch

    async def _store(self, batch: list[_Send]) -> None:
        database = batch[0].database
        try:
            rows = await database.fetch(_APPEND_BATCH, *_arguments(database, batch, _now()))
        except db.DatabaseError as error:
            log.debug("a batch of %d messages failed (%s); each is tried alone", len(batch), error)
            rows = []
        stored = {row[1]: row for row in rows}  # by room: one message per room per batch
        for send in batch:
            row = stored.get(send.room_id)
            if not send.future.done():
                send.future.set_result(None if row is None else Message.from_row(row))


def _arguments(database: db.Database, batch: list[_Send], at: datetime) -> tuple[Any, ...]:
    if database.dialect == "sqlite":
        rows = [[send.room_id, send.sender_id, send.client_msg_id, send.body] for send in batch]
        return at, json.dumps(rows, ensure_ascii=False)
    return (
        at,
        [send.room_id for send in batch],
        [send.sender_id for send in batch],
        [send.client_msg_id for send in batch],
        [send.body for send in batch],
    )
