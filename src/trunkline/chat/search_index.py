"""SQLite's search index, kept up to date in batches rather than by every send.

On SQLite, search reads the FTS5 table ``chat_messages_fts`` (external content: it indexes
``chat_messages.body`` by message id and stores no copy). FTS5 writes a new segment of its
index at every commit that changed it, so indexing each message as it is stored made each
lone send's transaction cost half again as much (a batch of one message, on a quiet node,
is the common case). Instead a message is indexed after it is stored:

- ``chat_search_progress`` holds ``indexed_upto``: every message with an id up to it is in
  the index, with its current body; none above it is;
- :func:`catch_up` indexes what lies above, :data:`CHUNK` messages a statement: it moves
  ``indexed_upto``, and a trigger indexes the messages the mark passes, so the index and
  the mark move together, and the writer is held for one short statement at a time;
- :class:`SearchIndexer`, in the chat tree on SQLite, calls it every
  ``limits.search_index_interval_s``, so the index is never far behind, pausing after each
  chunk as long as the chunk took;
- :func:`~trunkline.chat.search.search` calls it before it reads, so a search finds every
  message stored before it began: what lags is the work, never the results.

The triggers keep the index exact for the messages it holds: an edit of an indexed message
replaces its terms, a deletion (or a room deleted, whose messages go with it) removes them,
and a message that is not indexed yet needs nothing (it is indexed later with the body it
has then). SQLite may give a new message the id of the last one if that one was deleted;
such an id is at or below ``indexed_upto``, so the insert trigger indexes it at once.

The index is merged a bounded step at a time (migration 4). An FTS5 index is segments,
merged as they pile up; left to itself FTS5 merges in the transaction that writes a segment,
and as the index grows a merge holds the writer for tens of milliseconds - every room's
sends wait behind it. So the index does not merge by itself (``automerge`` 0): each chunk's
statement also merges at most :data:`MERGE_PAGES` pages, which keeps up with what the chunks
add. A merge step still costs more as the segments it merges grow (some milliseconds at
half a million messages); pacing the indexer keeps those steps from following each other.

PostgreSQL indexes a generated ``tsvector`` column in the same statement, as cheap as any
index: nothing here applies to it, and :func:`catch_up` returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from trunkline import db, otp

from .rooms import Queryable

__all__ = [
    "CHUNK",
    "MERGE_PAGES",
    "SEARCH_INDEX_MIGRATION",
    "SEARCH_MERGE_MIGRATION",
    "SearchIndexer",
    "catch_up",
]

log = logging.getLogger("trunkline.chat")

CHUNK = 256
"""The most messages one statement of :func:`catch_up` indexes."""

_INDEXED = "(SELECT indexed_upto FROM chat_search_progress)"

SEARCH_INDEX_MIGRATION = db.Migration(
    3,
    "index the messages for search in batches (SQLite)",
    postgresql="SELECT 1",  # PostgreSQL's generated column stays as it is
    sqlite=f"""
CREATE TABLE chat_search_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
INSERT INTO chat_search_progress (id, indexed_upto)
SELECT 1, COALESCE(MAX(id), 0) FROM chat_messages;
DROP TRIGGER chat_messages_fts_insert;
DROP TRIGGER chat_messages_fts_delete;
DROP TRIGGER chat_messages_fts_update;
CREATE TRIGGER chat_search_progress_index AFTER UPDATE OF indexed_upto ON chat_search_progress
WHEN new.indexed_upto > old.indexed_upto BEGIN
    INSERT INTO chat_messages_fts (rowid, body)
    SELECT id, body FROM chat_messages
    WHERE id > old.indexed_upto AND id <= new.indexed_upto;
END;
CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON chat_messages
WHEN new.id <= {_INDEXED} BEGIN
    INSERT INTO chat_messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON chat_messages
WHEN old.id <= {_INDEXED} BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, body)
    VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER chat_messages_fts_update AFTER UPDATE OF body ON chat_messages
WHEN old.id <= {_INDEXED} BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, body)
    VALUES ('delete', old.id, old.body);
    INSERT INTO chat_messages_fts (rowid, body) VALUES (new.id, new.body);
END;
""",
)
"""Migration 3 of the ``"chat"`` component: see the module documentation."""

MERGE_PAGES = 16
"""The most pages of the index one chunk's merge step writes (see the module documentation)."""

# Migration 3's trigger again, with a merge step: migration 3's text stays as it was applied
# (its checksum is recorded), so the trigger is written out anew rather than shared.
SEARCH_MERGE_MIGRATION = db.Migration(
    4,
    "merge the search index a bounded step a chunk (SQLite)",
    postgresql="SELECT 1",
    sqlite=f"""
INSERT INTO chat_messages_fts (chat_messages_fts, rank) VALUES ('automerge', 0);
DROP TRIGGER chat_search_progress_index;
CREATE TRIGGER chat_search_progress_index AFTER UPDATE OF indexed_upto ON chat_search_progress
WHEN new.indexed_upto > old.indexed_upto BEGIN
    INSERT INTO chat_messages_fts (rowid, body)
    SELECT id, body FROM chat_messages
    WHERE id > old.indexed_upto AND id <= new.indexed_upto;
    INSERT INTO chat_messages_fts (chat_messages_fts, rank) VALUES ('merge', {MERGE_PAGES});
END;
""",
)
"""Migration 4 of the ``"chat"`` component: see the module documentation."""

_LAST_PENDING = db.Query(
    "chat.search_index.last_pending",
    f"SELECT MAX(id) FROM chat_messages WHERE id > {_INDEXED}",
)
_CHUNK = db.Query(
    "chat.search_index.chunk",
    f"SELECT MAX(id), COUNT(*) FROM (SELECT id FROM chat_messages WHERE id > {_INDEXED} "
    "AND id <= $1 ORDER BY id LIMIT $2)",
)
# The trigger chat_search_progress_index indexes the messages the mark passes.
_MOVE = db.Query(
    "chat.search_index.move",
    "UPDATE chat_search_progress SET indexed_upto = $1 WHERE indexed_upto < $1",
)


async def catch_up(database: Queryable, *, paced: bool = False) -> int:
    """Index the messages stored before the call and not indexed yet; how many. Nothing to
    do (and no write) when none wait, and always on PostgreSQL. In a transaction, it
    indexes in that transaction.

    Each chunk is one statement, moving ``indexed_upto``: the writer is held for that
    statement alone, and it commits with whatever else is queued. Messages stored
    meanwhile wait for the next call: on a busy node, chasing them would make a
    transaction per message again. ``paced``: after each chunk, wait as long as it took
    before the next, so that the writer spends at most half its time on the index however
    much waits (the background indexer's way; a search wants its results now)."""
    if database.dialect != "sqlite":
        return 0
    last = await database.fetch_val(_LAST_PENDING)
    indexed = 0
    end = None
    while last is not None and end != last:
        started = time.perf_counter()
        [(end, count)] = await database.fetch(_CHUNK, last, CHUNK)  # an aggregate: one row
        if end is None:  # another catch-up indexed them meanwhile
            break
        if await database.execute(_MOVE, end):
            indexed += count
        if paced and end != last:
            await asyncio.sleep(time.perf_counter() - started)
    return indexed


_INDEX_NOW = "index"


class SearchIndexer(otp.GenServer):
    """Calls :func:`catch_up` every ``interval_s``; see the module documentation. A
    database failure is logged and the next round tries again: the messages wait, and a
    search indexes them itself."""

    def init(self, arg: tuple[db.Database, float]) -> None:
        self.database, self.interval_s = arg
        otp.send_after(self.interval_s, self.pid, _INDEX_NOW)

    async def handle_info(self, message: Any) -> None:
        if message != _INDEX_NOW:
            log.warning("the search indexer received an unexpected message: %r", message)
            return
        try:
            await catch_up(self.database, paced=True)
        except db.DatabaseError as error:
            log.warning("could not index messages for search: %s", error)
        otp.send_after(self.interval_s, self.pid, _INDEX_NOW)
