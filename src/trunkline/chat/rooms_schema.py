"""The schema of rooms and messages: migration 2 of the ``"chat"`` component.

Tables (every id a ``BIGINT``; users are ``chat_users`` of migration 1):

- ``chat_rooms``: one row per room; ``kind`` is ``public``, ``private`` or ``direct``. A direct
  room's ``direct_key`` (``"<low id>:<high id>"``) is unique, so two users have one direct room
  however many nodes open it at once.
- ``chat_room_members``: who is in which room, with their role (``owner``, ``admin``,
  ``member``), their mute and their read marker (``last_read_seq``).
- ``chat_room_bans`` and ``chat_room_invites``: who may not (re)join a room, who may join a
  private one.
- ``chat_messages``: the history. ``seq`` numbers a room's messages 1, 2, 3... with no gap,
  guarded by the unique ``(room_id, seq)``; ``(room_id, sender_id, client_msg_id)`` is unique
  too, which makes a retried send find the message it stored. Edits and deletions change the
  row in place (``version`` counts the changes); a deleted message keeps its ``seq`` with an
  empty body.

The indexes serve the hot queries: history and resume read ``(room_id, seq)`` (the unique
constraint's index); a user's rooms, unread counts and the scope of a search start from
``chat_room_members_user (user_id, room_id)``; the public rooms are listed from a partial index.

Search: on PostgreSQL a ``tsvector`` column generated from the body (the ``simple``
configuration: lower case, no stemming, like SQLite's tokenizer) with a GIN index; on SQLite an
FTS5 table over the body (external content: the text is not stored twice) kept in step by
triggers. Migration 3 changes those triggers: messages are indexed in batches after they are
stored (``search_index.py``).
"""

from __future__ import annotations

from trunkline import db

__all__ = [
    "BANS_TABLE",
    "INVITES_TABLE",
    "MEMBERS_TABLE",
    "MESSAGES_TABLE",
    "ROOMS_MIGRATION",
    "ROOMS_TABLE",
    "SEARCH_TABLE",
]

ROOMS_TABLE = "chat_rooms"
MEMBERS_TABLE = "chat_room_members"
BANS_TABLE = "chat_room_bans"
INVITES_TABLE = "chat_room_invites"
MESSAGES_TABLE = "chat_messages"
SEARCH_TABLE = "chat_messages_fts"
"""SQLite only: the FTS5 index of the messages' bodies."""

# One script for both dialects but for the id column ("<id>") and the search ("<search>").
_CREATE = f"""
CREATE TABLE {ROOMS_TABLE} (
    id <id>,
    kind TEXT NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    name TEXT,
    topic TEXT NOT NULL DEFAULT '',
    created_by BIGINT REFERENCES chat_users (id),
    created_at TIMESTAMPTZ NOT NULL,
    direct_key TEXT UNIQUE,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);
CREATE INDEX chat_rooms_public ON {ROOMS_TABLE} (id) WHERE kind = 'public';

CREATE TABLE {MEMBERS_TABLE} (
    room_id BIGINT NOT NULL REFERENCES {ROOMS_TABLE} (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES chat_users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at TIMESTAMPTZ NOT NULL,
    muted BOOLEAN NOT NULL DEFAULT FALSE,
    muted_until TIMESTAMPTZ,
    last_read_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX chat_room_members_user ON {MEMBERS_TABLE} (user_id, room_id);

CREATE TABLE {BANS_TABLE} (
    room_id BIGINT NOT NULL REFERENCES {ROOMS_TABLE} (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES chat_users (id) ON DELETE CASCADE,
    banned_by BIGINT REFERENCES chat_users (id) ON DELETE SET NULL,
    banned_at TIMESTAMPTZ NOT NULL,
    banned_until TIMESTAMPTZ,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE {INVITES_TABLE} (
    room_id BIGINT NOT NULL REFERENCES {ROOMS_TABLE} (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES chat_users (id) ON DELETE CASCADE,
    invited_by BIGINT REFERENCES chat_users (id) ON DELETE SET NULL,
    invited_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE {MESSAGES_TABLE} (
    id <id>,
    room_id BIGINT NOT NULL REFERENCES {ROOMS_TABLE} (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL CHECK (seq >= 1),
    sender_id BIGINT NOT NULL REFERENCES chat_users (id),
    client_msg_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    edited_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),<search>
    CONSTRAINT chat_messages_room_seq UNIQUE (room_id, seq),
    CONSTRAINT chat_messages_client_msg UNIQUE (room_id, sender_id, client_msg_id)
);
"""

_POSTGRESQL_SEARCH = """
CREATE INDEX chat_messages_search ON chat_messages USING GIN (search);
"""

# External content: the FTS5 table indexes chat_messages.body by rowid (the message id) and
# stores no copy; the triggers keep it in step, and an edit or a deletion (the body emptied)
# replaces the old terms. Migration 3 replaces these triggers: see search_index.py.
_SQLITE_SEARCH = f"""
CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(
    body, content='{MESSAGES_TABLE}', content_rowid='id'
);
CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON {MESSAGES_TABLE} BEGIN
    INSERT INTO {SEARCH_TABLE} (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON {MESSAGES_TABLE} BEGIN
    INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER chat_messages_fts_update AFTER UPDATE OF body ON {MESSAGES_TABLE} BEGIN
    INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO {SEARCH_TABLE} (rowid, body) VALUES (new.id, new.body);
END;
"""

ROOMS_MIGRATION = db.Migration(
    2,
    "create rooms, members, bans, invites, messages and their search",
    postgresql=_CREATE.replace(
        "<id>", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    ).replace(
        "<search>",
        "\n    search TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,",
    )
    + _POSTGRESQL_SEARCH,
    # The id is SQLite's rowid ("INTEGER PRIMARY KEY" exactly), the FTS5 table's content_rowid.
    sqlite=_CREATE.replace("<id>", "INTEGER PRIMARY KEY").replace("<search>", "") + _SQLITE_SEARCH,
)
"""Migration 2 of the ``"chat"`` component: rooms, membership, moderation, messages, search."""
