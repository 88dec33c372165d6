"""Search: full text over the messages of the rooms a user belongs to.

SQLite searches its FTS5 table, PostgreSQL the ``tsvector`` generated from each body (the
``simple`` configuration; see ``rooms_schema.py``). SQLite's index is brought up to date
before each search (see ``search_index.py``), so every message stored before the search
began can be found. Words match whole and in any case; nothing is stemmed.

A query is what a user types, read as a web search box reads it (PostgreSQL's
``websearch_to_tsquery``): words must all appear; ``"quoted words"`` must appear in that
order; ``-word`` (or ``-"quoted words"``) must not appear; ``or`` between terms gives
alternatives. Everything else - quotes left open, ``*``, ``NEAR(``, ``(``, ``:``, ``^`` - is
punctuation, never syntax: the query is parsed here, reduced to words, and rebuilt for each
engine, so no input can make a query fail. A query with nothing to look for (only
punctuation, or only exclusions) finds nothing.

Deleted messages are never found (their body is gone, and they are filtered out besides).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trunkline import db

from .exceptions import InvalidInput
from .messages import _COLUMNS, Message
from .rooms import Queryable, _check_limit, require_member
from .search_index import catch_up

__all__ = ["MAX_QUERY_CHARS", "MAX_SEARCH_LIMIT", "search"]

MAX_QUERY_CHARS = 500
MAX_SEARCH_LIMIT = 100
"""The most messages one search returns."""

_M = ", ".join(f"m.{column.strip()}" for column in _COLUMNS.split(","))

# Newest first. The membership join scopes the search to the user's rooms.
_SEARCH = db.Query(
    "chat.search",
    postgresql=f"SELECT {_M} FROM chat_messages m "
    "JOIN chat_room_members r ON r.room_id = m.room_id AND r.user_id = $1 "
    "WHERE m.search @@ websearch_to_tsquery('simple', $2) AND m.deleted_at IS NULL "
    "ORDER BY m.id DESC LIMIT $3",
    sqlite=f"SELECT {_M} FROM chat_messages_fts "
    "JOIN chat_messages m ON m.id = chat_messages_fts.rowid "
    "JOIN chat_room_members r ON r.room_id = m.room_id AND r.user_id = $1 "
    "WHERE chat_messages_fts MATCH $2 AND m.deleted_at IS NULL "
    "ORDER BY m.id DESC LIMIT $3",
)
_SEARCH_ROOM = db.Query(
    "chat.search.room",
    postgresql=f"SELECT {_M} FROM chat_messages m "
    "WHERE m.room_id = $1 AND m.search @@ websearch_to_tsquery('simple', $2) "
    "AND m.deleted_at IS NULL ORDER BY m.id DESC LIMIT $3",
    sqlite=f"SELECT {_M} FROM chat_messages_fts "
    "JOIN chat_messages m ON m.id = chat_messages_fts.rowid "
    "WHERE m.room_id = $1 AND chat_messages_fts MATCH $2 AND m.deleted_at IS NULL "
    "ORDER BY m.id DESC LIMIT $3",
)


async def search(
    database: Queryable,
    user_id: int,
    query: str,
    *,
    room_id: int | None = None,
    limit: int = 20,
) -> list[Message]:
    """The messages matching ``query`` in ``user_id``'s rooms (or in ``room_id`` only),
    newest first, at most ``limit`` (capped at :data:`MAX_SEARCH_LIMIT`).

    Raises:
        InvalidInput: ``query`` is not a string or is longer than :data:`MAX_QUERY_CHARS`
            (field ``"query"``); a bad limit.
        NotFound: ``room_id`` names no room.
        NotMember: ``user_id`` is not in ``room_id``.
    """
    terms = _parse(_check_query(query))
    limit = _check_limit(limit, MAX_SEARCH_LIMIT)
    if room_id is not None:
        await require_member(database, room_id, user_id)
    if not terms:
        return []
    await catch_up(database)
    text = _to_fts5(terms) if database.dialect == "sqlite" else _to_websearch(terms)
    if room_id is None:
        rows = await database.fetch(_SEARCH, user_id, text, limit)
    else:
        rows = await database.fetch(_SEARCH_ROOM, room_id, text, limit)
    return [Message.from_row(row) for row in rows]


# -- the query --


@dataclass(frozen=True)
class _Term:
    """Words that must appear in this order (one word: anywhere), or must not (``negated``)."""

    words: tuple[str, ...]
    negated: bool


# A quoted phrase (maybe never closed, maybe negated), or a run of anything but space.
_TOKENS = re.compile(r'(-?)"([^"]*)"?|(\S+)')
# What both engines' tokenizers keep as words: letters and digits (no underscore).
_WORDS = re.compile(r"[^\W_]+")


def _parse(query: str) -> list[list[_Term]]:
    """``query`` as alternatives (split at ``or``), each a list of terms that must all hold.

    Alternatives with no positive term (nothing to look for) are dropped, and so is
    everything that is not a word.
    """
    alternatives: list[list[_Term]] = [[]]
    for match in _TOKENS.finditer(query):
        sign, phrase, bare = match.groups()
        if bare is not None and bare.lower() == "or":
            if alternatives[-1]:
                alternatives.append([])
            continue
        if bare is not None:
            negated = bare.startswith("-")
            words = tuple(_WORDS.findall(bare))
        else:
            negated = sign == "-"
            words = tuple(_WORDS.findall(phrase))
        if words:
            alternatives[-1].append(_Term(tuple(word.lower() for word in words), negated))
    return [terms for terms in alternatives if any(not term.negated for term in terms)]


def _to_fts5(alternatives: list[list[_Term]]) -> str:
    # Every term a quoted FTS5 phrase of plain words: nothing the user typed is syntax.
    def phrase(term: _Term) -> str:
        return '"' + " ".join(term.words) + '"'

    parts = []
    for terms in alternatives:
        expression = "(" + " AND ".join(phrase(t) for t in terms if not t.negated) + ")"
        for term in terms:
            if term.negated:
                expression = f"({expression} NOT {phrase(term)})"
        parts.append(expression)
    return " OR ".join(parts)


def _to_websearch(alternatives: list[list[_Term]]) -> str:
    # Rebuilt from the same terms, every one quoted (so a word "or" stays a word).
    def phrase(term: _Term) -> str:
        return ("-" if term.negated else "") + '"' + " ".join(term.words) + '"'

    return " or ".join(" ".join(phrase(term) for term in terms) for terms in alternatives)


def _check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise InvalidInput("query", "wrong_type", "a search query is a string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(
            "query", "too_long", f"a search query has at most {MAX_QUERY_CHARS} characters"
        )
    return query
