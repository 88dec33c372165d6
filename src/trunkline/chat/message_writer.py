"""The node's message writer: the sends of every room, stored a batch at a time.

A room's process stores each message before it acknowledges it: with many rooms busy at once,
a statement per message would cost each message a transaction, a commit and a trip to the
database of its own - on SQLite, two hand-offs between the event loop and the writer thread,
which cost more than the insert. The writer stores what the rooms hand it together instead.
While one batch is being written the next one collects, so a lone message goes at once and a
batch grows with the load (group commit).

A node that would rather spend less CPU than answer sooner may also have batches start at
most every ``batch_interval_s`` (off by default): the next batch waits out the rest of that
time after the last began, and takes what arrived meanwhile. Each batch is a transaction, and
a transaction costs its commit and a write of every page it changed - the last page of the
table and a page of each index per room, whatever the batch's size - so fewer, larger batches
cost less: with 4 ms, a sixth to a third less CPU per message at 3,500 messages a second in
rooms of 10. Its price is latency: a send waits up to that long wherever batches come more
often than that (at 444 messages a second, the median send -> receive went from 0.7 to
3.9 ms). A send whose last batch began longer ago does not wait.

A batch is one statement - an ``INSERT ... SELECT`` over the batch's rows, with the checks of
``append``'s common case on each: the sender is a member of the room and not muted, the
``client_msg_id`` is not stored yet, and the message takes the room's next number - and what
it stored comes back from it as one value, a JSON array, whatever the batch's size (on
SQLite, each row a statement returns costs the writer thread the GIL again, which a busy
event loop makes it wait for: see :data:`BATCH_MIGRATION`). Several messages of one room are
numbered in the order they were handed over (the room's last number plus their rank among
the room's rows that pass the checks), so a room whose members all send at once is stored in
one statement, not one statement each. That holds on SQLite, whose one writer makes the
statement the only one numbering; on PostgreSQL, where other nodes may number the same room
at the same moment, a batch holds one message per room, so that a number taken by another
node costs one message the careful way rather than reordering a sender's messages. A send
whose ``client_msg_id`` is already in the batch waits for the next one (where it is a retry).

What the statement did not store (a sender who is not a member or is muted, a retried
``client_msg_id``, a number another node took first) goes the careful way,
:func:`~trunkline.chat.messages.append` on its own, which finds out which and answers as it
always does. So does every message of a batch whose statement failed: one bad row must not
fail the others.

:meth:`MessageWriter.store` hands a message over and returns at once, with a future of the
stored message: a room's process hands over each send as it comes and answers it when its
future is done, so that the sends of one busy room share batches. Futures are done in the
order the messages were stored, which is their numbers' order.

The guarantees are ``append``'s: a message is acknowledged once stored (its batch
committed), numbers have no gap, and a retried ``client_msg_id`` is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import orjson

from trunkline import db

from .messages import (
    _MUTE_OVER,
    MAX_BODY_CHARS,
    Message,
    _check_client_msg_id,
    append,
    check_body,
)
from .rooms import _now

__all__ = ["BATCH_INTERVAL_S", "BATCH_MIGRATION", "MAX_BATCH", "MessageWriter"]

log = logging.getLogger("trunkline.chat")

MAX_BATCH = 256
"""The most messages one statement stores."""

BATCH_INTERVAL_S = 0.0
"""By default a batch starts as soon as the last one is stored (see the module
documentation)."""

_MUTE_OVER_BATCH = _MUTE_OVER.replace("$5", "$1")

# The batch's rows come as one JSON array of [room, sender, client id, body] on SQLite (one
# statement whatever the batch's size, so SQLite prepares it once), as arrays on PostgreSQL.
# Both read the room's last number as it was before the statement (PostgreSQL's snapshot;
# SQLite's INSERT ... SELECT from the table it inserts into reads it all first), and number a
# room's rows by their rank ``n`` among those that pass the checks: no gap, whatever fails.
# What was stored comes back as one value, a JSON array of [id, room, seq, sender, client id]
# (see BATCH_MIGRATION for why); the rest is the send's, and a new message's (created now,
# never edited, version 1).
_NOT_STORED = """NOT EXISTS (SELECT 1 FROM chat_messages d
                  WHERE d.room_id = b.room_id AND d.sender_id = b.sender_id
                    AND d.client_msg_id = b.client_msg_id)"""

BATCH_MIGRATION = db.Migration(
    5,
    "store a batch of messages through the view chat_message_batches (SQLite)",
    postgresql="SELECT 1",
    # Written out rather than built from the statements above: a migration's text is
    # checksummed once applied, and must not change with them.
    sqlite="""
CREATE VIEW chat_message_batches (created_at, sends, after_id) AS SELECT NULL, NULL, NULL WHERE 0;
CREATE TRIGGER chat_message_batches_store INSTEAD OF INSERT ON chat_message_batches BEGIN
    INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
    SELECT b.room_id,
           (SELECT COALESCE(MAX(c.seq), 0) FROM chat_messages c
            WHERE c.room_id = b.room_id)
           + ROW_NUMBER() OVER (PARTITION BY b.room_id ORDER BY b.n),
           b.sender_id, b.client_msg_id, b.body, new.created_at
    FROM (SELECT key AS n, value ->> 0 AS room_id, value ->> 1 AS sender_id,
                 value ->> 2 AS client_msg_id, value ->> 3 AS body
          FROM json_each(new.sends)) AS b
    JOIN chat_room_members m ON m.room_id = b.room_id AND m.user_id = b.sender_id
    WHERE (NOT m.muted OR (m.muted_until IS NOT NULL AND m.muted_until <= new.created_at))
      AND NOT EXISTS (SELECT 1 FROM chat_messages d
                      WHERE d.room_id = b.room_id AND d.sender_id = b.sender_id
                        AND d.client_msg_id = b.client_msg_id)
    ON CONFLICT DO NOTHING;
END;
""",
)
"""Migration 5 of the ``"chat"`` component, SQLite only: a batch is stored by inserting one
row into the view ``chat_message_batches`` (``sends``, the JSON array of the batch; the time;
``after_id``, the highest message id before it), whose trigger inserts the messages; the
statement returns, in one row, the messages with an id above ``after_id`` - SQLite numbers
new rows above the highest. Python's ``sqlite3`` gives up the GIL and takes it back for every
row a statement returns; while the event loop is busy, taking it back waits for the loop's
thread to let go (up to ``sys.getswitchinterval()``, 5 ms), so a batch returned a row per
message took longer the busier the node was: 256 messages beside a thread running Python
took over a second, against 5 ms beside an idle one. One row costs the writer two such waits
whatever the batch's size (22 ms there). The view stores nothing."""

_APPEND_BATCH = db.Query(
    "chat.messages.append_batch",
    postgresql=f"""
        WITH stored AS (
            INSERT INTO chat_messages (room_id, seq, sender_id, client_msg_id, body, created_at)
            SELECT b.room_id,
                   (SELECT COALESCE(MAX(c.seq), 0) FROM chat_messages c
                    WHERE c.room_id = b.room_id)
                   + ROW_NUMBER() OVER (PARTITION BY b.room_id ORDER BY b.n),
                   b.sender_id, b.client_msg_id, b.body, $1::timestamptz
            FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY
                 AS b(room_id, sender_id, client_msg_id, body, n)
            JOIN chat_room_members m ON m.room_id = b.room_id AND m.user_id = b.sender_id
            WHERE {_MUTE_OVER_BATCH} AND {_NOT_STORED}
            ON CONFLICT DO NOTHING
            RETURNING id, room_id, seq, sender_id, client_msg_id
        )
        SELECT COALESCE(json_agg(json_build_array(id, room_id, seq, sender_id, client_msg_id)),
                        '[]')::text
        FROM stored""",
    sqlite="""
        INSERT INTO chat_message_batches (created_at, sends, after_id)
        VALUES ($1, $2, (SELECT COALESCE(MAX(id), 0) FROM chat_messages))
        RETURNING (SELECT json_group_array(
                              json_array(id, room_id, seq, sender_id, client_msg_id))
                   FROM chat_messages WHERE id > after_id)""",
)


class _Send:
    __slots__ = ("body", "client_msg_id", "database", "future", "max_chars", "room_id", "sender_id")

    def __init__(
        self,
        database: db.Database,
        room_id: int,
        sender_id: int,
        body: str,
        client_msg_id: str,
        max_chars: int,
        future: asyncio.Future[Message],
    ) -> None:
        self.database = database
        self.room_id = room_id
        self.sender_id = sender_id
        self.body = body
        self.client_msg_id = client_msg_id
        self.max_chars = max_chars
        self.future = future


class MessageWriter:
    """Stores messages in batches; see the module documentation. One per chat tree, shared
    by its room processes.

    Args:
        batch_interval_s: a batch starts at most this long after the last one began (0: as
            soon as the last one is stored).
    """

    def __init__(self, batch_interval_s: float = BATCH_INTERVAL_S) -> None:
        self.batch_interval_s = batch_interval_s
        self._began_at = -float("inf")  # when the last batch began (loop time)
        self._waiting: list[_Send] = []
        self._writing: asyncio.Task[None] | None = None
        self._careful: set[asyncio.Task[None]] = set()
        # Looked up once: asyncio.get_running_loop() costs a getpid() system call a time.
        self._loop: asyncio.AbstractEventLoop | None = None

    def store(
        self,
        database: db.Database,
        room_id: int,
        sender_id: int,
        body: str,
        client_msg_id: str,
        *,
        max_chars: int = MAX_BODY_CHARS,
    ) -> asyncio.Future[Message]:
        """Hand a message over to be stored as the room's next one, in the next batch; the
        future of the stored message, or of :func:`~trunkline.chat.messages.append`'s error
        (cancel it to withdraw the message while it waits for its batch).

        Raises:
            InvalidInput: a bad body or client message id; nothing is handed over.
        """
        body = check_body(body, max_chars)
        client_msg_id = _check_client_msg_id(client_msg_id)
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        self._waiting.append(
            _Send(database, room_id, sender_id, body, client_msg_id, max_chars, future)
        )
        if self._writing is None:
            self._writing = loop.create_task(self._write())
        return future

    async def _write(self) -> None:
        batch: list[_Send] = []
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                wait_s = self._began_at + self.batch_interval_s - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                self._began_at = loop.time()
                if batch := self._take_batch():
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
        """The next batch: the waiting sends, in order, only those on the first one's
        database, one per ``client_msg_id`` and, on PostgreSQL, one per room; the rest wait
        for the next."""
        waiting = self._waiting
        if len(waiting) <= 1:
            self._waiting = []
            return [send for send in waiting if not send.future.done()]
        database = waiting[0].database
        one_per_room = database.dialect == "postgresql"
        rooms: set[int] = set()
        sends: set[tuple[int, int, str]] = set()
        deferred: set[int] = set()  # rooms with a send left for the next batch
        batch: list[_Send] = []
        later: list[_Send] = []
        for send in waiting:
            if send.future.done():
                continue  # its caller gave up before it was written
            room_id = send.room_id
            key = (room_id, send.sender_id, send.client_msg_id)
            if (
                room_id in deferred  # a room's sends keep their order
                or send.database is not database
                or len(batch) >= MAX_BATCH
                or key in sends
                or (one_per_room and room_id in rooms)
            ):
                deferred.add(room_id)
                later.append(send)
            else:
                rooms.add(room_id)
                sends.add(key)
                batch.append(send)
        self._waiting = later
        return batch

    async def _store(self, batch: list[_Send]) -> None:
        database = batch[0].database
        at = _now()
        try:
            stored_json = await database.fetch_val(_APPEND_BATCH, *_arguments(database, batch, at))
            rows = orjson.loads(stored_json) if stored_json else []
        except db.DatabaseError as error:
            log.debug("a batch of %d messages failed (%s); each is tried alone", len(batch), error)
            rows = []
        # By room, sender and client id: the id and the number.
        stored = {(row[1], row[3], row[4]): row for row in rows}
        for send in batch:
            row = stored.get((send.room_id, send.sender_id, send.client_msg_id))
            if send.future.done():
                continue
            if row is not None:
                message = Message(
                    id=row[0],
                    room_id=send.room_id,
                    seq=row[2],
                    sender_id=send.sender_id,
                    client_msg_id=send.client_msg_id,
                    body=send.body,
                    created_at=at,
                    edited_at=None,
                    deleted_at=None,
                    version=1,
                )
                send.future.set_result(message)
            else:
                # Not stored by the batch: the careful way says why, or stores it.
                task = asyncio.get_running_loop().create_task(_carefully(send))
                self._careful.add(task)
                task.add_done_callback(self._careful.discard)


async def _carefully(send: _Send) -> None:
    try:
        message = await append(
            send.database,
            send.room_id,
            send.sender_id,
            send.body,
            send.client_msg_id,
            max_chars=send.max_chars,
        )
    except BaseException as error:
        if not send.future.done():
            if isinstance(error, asyncio.CancelledError):
                send.future.cancel()
            else:
                send.future.set_exception(error)
        if not isinstance(error, Exception):
            raise
    else:
        if not send.future.done():
            send.future.set_result(message)


def _arguments(database: db.Database, batch: list[_Send], at: datetime) -> tuple[Any, ...]:
    if database.dialect == "sqlite":
        rows = [[send.room_id, send.sender_id, send.client_msg_id, send.body] for send in batch]
        return at, orjson.dumps(rows).decode()
    return (
        at,
        [send.room_id for send in batch],
        [send.sender_id for send in batch],
        [send.client_msg_id for send in batch],
        [send.body for send in batch],
    )
