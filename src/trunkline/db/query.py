"""Statements: one parameter style for both drivers, named for telemetry, compiled once.

Every statement uses PostgreSQL's numbered parameters, ``$1, $2, ...``, on both drivers; for
SQLite they become ``?1, ?2, ...`` (SQLite's own numbered form, so ``$2`` may come before
``$1`` and a number may repeat). The translation runs once per statement text: a
:class:`Query` translates when it is made, a plain string the first time it is run, then
from a cache.

Hot queries are written per dialect and kept side by side::

    FETCH_JOBS = Query(
        "jobs.fetch",
        postgresql=\"\"\"
            UPDATE jobs SET state = 'executing'
            WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = 'available'
                         ORDER BY priority, id LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *\"\"\",
        sqlite=\"\"\"
            UPDATE jobs SET state = 'executing'
            WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = 'available'
                         ORDER BY priority, id LIMIT $2)
            RETURNING *\"\"\",
    )
    COUNT_JOBS = Query("jobs.count", "SELECT count(*) FROM jobs WHERE queue = $1")
"""

from __future__ import annotations

import re

__all__ = ["POSTGRESQL", "SQLITE", "STATEMENTS", "Query", "Statement", "statement_for"]

POSTGRESQL = 0
SQLITE = 1

# A string literal, a quoted identifier, a comment, a $n parameter, or a bare '?'. Literals
# and comments are matched so that what looks like a parameter inside them is left alone.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$(\d+)|(\?\d*)""", re.DOTALL
)
_LITERALS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/""", re.DOTALL)
_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_WRITES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_TABLE_AFTER = {"select": "from", "delete": "from", "insert": "into", "replace": "into"}

_CACHE_SIZE = 4096


class Statement:
    """A statement ready for one driver: its name, its text in that driver's dialect, and
    whether it only reads (SQLite sends those to its reader connections)."""

    __slots__ = ("name", "readonly", "text")

    def __init__(self, name: str, text: str, readonly: bool) -> None:
        self.name = name
        self.text = text
        self.readonly = readonly

    def __repr__(self) -> str:
        return f"<Statement {self.name!r}>"


class Query:
    """A named statement, the same for both drivers or written once per dialect.

    The name is what telemetry and errors call the statement (``"jobs.fetch"``).

    Args:
        name: a non-empty name, dotted by convention: ``"<component>.<what>"``.
        sql: the statement for both drivers.
        postgresql: the statement for PostgreSQL (give ``sqlite`` too, not ``sql``).
        sqlite: the statement for SQLite (give ``postgresql`` too, not ``sql``).

    Raises:
        ValueError: no name; neither ``sql`` nor both dialects; ``sql`` together with a
            dialect; a SQLite statement using ``?`` parameters instead of ``$1``.
        TypeError: a statement that is not a string.

    Example::

        GET_USER = Query("chat.get_user", "SELECT id, name FROM users WHERE id = $1")
        row = await db.fetch_one(GET_USER, user_id)
    """

    __slots__ = ("_statements", "name", "postgresql", "sqlite")

    def __init__(
        self,
        name: str,
        sql: str | None = None,
        *,
        postgresql: str | None = None,
        sqlite: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a Query needs a non-empty name, got {name!r}")
        if sql is not None:
            if postgresql is not None or sqlite is not None:
                raise ValueError(
                    f"Query {name!r}: give sql= for both dialects, or postgresql= and sqlite=, "
                    "not both"
                )
            postgresql = sqlite = sql
        elif postgresql is None or sqlite is None:
            missing = "sqlite" if sqlite is None else "postgresql"
            raise ValueError(
                f"Query {name!r} has no {missing}= statement: give both dialects, or sql="
            )
        for text in (postgresql, sqlite):
            if not isinstance(text, str):
                raise TypeError(f"Query {name!r}: a statement is a string, got {text!r}")
        self.name = name
        self.postgresql = postgresql
        self.sqlite = sqlite
        self._statements = (
            Statement(name, postgresql, _reads_only(postgresql)),
            Statement(name, _to_sqlite(sqlite, name), _reads_only(sqlite)),
        )

    def __repr__(self) -> str:
        return f"Query({self.name!r})"


STATEMENTS: tuple[dict[Query | str, Statement], dict[Query | str, Statement]] = ({}, {})
"""Per dialect, the statements run so far, by their query or text: a hot statement is found
with one dict lookup (``STATEMENTS[dialect].get(query)``), and :func:`statement_for` on a
miss."""


def statement_for(query: Query | str, dialect: int) -> Statement:
    """The statement to run for ``query`` on ``dialect`` (``POSTGRESQL`` or ``SQLITE``).

    Raises:
        TypeError: ``query`` is neither a :class:`Query` nor a string.
        ValueError: a SQLite statement with ``?`` parameters.
    """
    cache = STATEMENTS[dialect]
    statement = cache.get(query)
    if statement is not None:
        return statement
    if type(query) is str:
        statement = _compile(query, dialect)
    elif isinstance(query, Query):
        statement = query._statements[dialect]
    else:
        raise TypeError(f"a statement is a Query or a string, got {query!r}")
    if len(cache) >= _CACHE_SIZE:
        cache.clear()  # statements built on the fly; the hot ones come back at once
    cache[query] = statement
    return statement


def _compile(sql: str, dialect: int) -> Statement:
    name = statement_name(sql)
    text = _to_sqlite(sql, name) if dialect == SQLITE else sql
    return Statement(name, text, _reads_only(sql))


def statement_name(sql: str) -> str:
    """What telemetry calls a plain-string statement: its verb and first table, such as
    ``"select jobs"``, ``"insert jobs"``, ``"update jobs"``; else its first two words
    (``"create table"``), or the verb alone (``"select"`` with no ``FROM``)."""
    words = _WORDS.findall(_LITERALS.sub(" ", sql[:500]))
    if not words:
        return "sql"
    verb = words[0].lower()
    lowered = [word.lower() for word in words]
    if verb == "update" and len(words) > 1:
        return f"update {words[1]}"
    keyword = _TABLE_AFTER.get(verb)
    if keyword is None:
        return " ".join(lowered[:2])
    position = lowered.index(keyword) if keyword in lowered else len(words)
    return f"{verb} {words[position + 1]}" if position + 1 < len(words) else verb


def _to_sqlite(sql: str, name: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "?" + match.group(1)
        if match.group(2) is not None:
            raise ValueError(
                f"statement {name!r} uses SQLite's {match.group(2)!r} parameter; "
                "write $1, $2, ... on both drivers"
            )
        return match.group(0)

    return _TOKENS.sub(replace, sql)


def _reads_only(sql: str) -> bool:
    # Routing only: a statement judged read-only that writes fails on a read-only SQLite
    # connection and is sent again to the writer, so erring towards "reads" is safe.
    stripped = _LITERALS.sub(" ", sql).lstrip(" \t\r\n(")
    verb = stripped[:6].upper()
    if verb == "SELECT" or verb.startswith("VALUES"):
        return True
    if verb.startswith("WITH"):
        return _WRITES.search(stripped) is None
    return False
