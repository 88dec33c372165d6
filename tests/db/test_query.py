"""Statements: one parameter style, translated once per text; names for telemetry."""

import pytest

from trunkline.db import Query
from trunkline.db.query import POSTGRESQL, SQLITE, statement_for, statement_name


def test_numbered_parameters_become_sqlites_numbered_form() -> None:
    sql = "SELECT $2, $1, $10 FROM t WHERE a = $1"
    assert statement_for(sql, SQLITE).text == "SELECT ?2, ?1, ?10 FROM t WHERE a = ?1"
    assert statement_for(sql, POSTGRESQL).text == sql


def test_literals_identifiers_and_comments_are_left_alone() -> None:
    sql = """SELECT '$1', 'it''s $2', "col$3", $1 -- $4 here
             /* $5 ? */ FROM t"""
    translated = statement_for(sql, SQLITE).text
    assert "'$1'" in translated
    assert "'it''s $2'" in translated
    assert '"col$3"' in translated
    assert "-- $4 here" in translated
    assert "/* $5 ? */" in translated
    assert ", ?1 " in translated


def test_sqlite_placeholders_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"write \$1, \$2"):
        statement_for("SELECT * FROM t WHERE a = ?", SQLITE)
    with pytest.raises(ValueError, match=r"'lite\.q'.*'\?1'"):
        Query("lite.q", postgresql="SELECT $1", sqlite="SELECT ?1")


def test_translation_is_cached_per_text() -> None:
    sql = "SELECT $1 AS cached"
    assert statement_for(sql, SQLITE) is statement_for(sql, SQLITE)
    query = Query("q.cached", sql)
    assert statement_for(query, SQLITE) is statement_for(query, SQLITE)


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT id, body FROM messages WHERE room = $1", "select messages"),
        ("  insert into jobs (id) values ($1)", "insert jobs"),
        ("UPDATE jobs SET state = 'x'", "update jobs"),
        ("DELETE FROM jobs WHERE id = $1", "delete jobs"),
        ("CREATE TABLE kv (id BIGINT)", "create table"),
        ("SELECT 'from nowhere' AS x", "select"),
        ("BEGIN", "begin"),
        ("", "sql"),
    ],
)
def test_plain_statements_are_named_by_verb_and_table(sql: str, name: str) -> None:
    assert statement_name(sql) == name


@pytest.mark.parametrize(
    ("sql", "readonly"),
    [
        ("SELECT 1", True),
        ("  (SELECT 1) UNION (SELECT 2)", True),
        ("VALUES (1), (2)", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("WITH x AS (SELECT 'insert') SELECT * FROM x", True),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", False),
        ("-- SELECT\nDELETE FROM t", False),
        ("INSERT INTO t VALUES (1)", False),
        ("PRAGMA user_version = 3", False),
    ],
)
def test_reads_are_told_from_writes(sql: str, readonly: bool) -> None:
    assert statement_for(sql, SQLITE).readonly is readonly


def test_a_query_per_dialect() -> None:
    query = Query("jobs.fetch", postgresql="SELECT $1 FOR UPDATE", sqlite="SELECT $1")
    assert statement_for(query, POSTGRESQL).text == "SELECT $1 FOR UPDATE"
    assert statement_for(query, SQLITE).text == "SELECT ?1"
    assert statement_for(query, SQLITE).name == "jobs.fetch"
    assert repr(query) == "Query('jobs.fetch')"


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("",), {"sql": "SELECT 1"}, "non-empty name"),
        (("q",), {}, "no sqlite= statement"),
        (("q",), {"postgresql": "SELECT 1"}, "no sqlite= statement"),
        (("q",), {"sqlite": "SELECT 1"}, "no postgresql= statement"),
        (("q", "SELECT 1"), {"sqlite": "SELECT 2"}, "not both"),
    ],
)
def test_a_query_needs_a_name_and_its_sql(
    args: tuple[str, ...], kwargs: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        Query(*args, **kwargs)


def test_statements_are_strings_or_queries() -> None:
    with pytest.raises(TypeError, match="a Query or a string"):
        statement_for(42, SQLITE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a statement is a string"):
        Query("q", b"SELECT 1")  # type: ignore[arg-type]
