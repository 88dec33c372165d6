"""Migration definitions and plans are checked before anything runs. (Applying them, on both
drivers, is in the conformance suite.)"""

import pytest

from trunkline.db import Migration
from trunkline.db.migration import _check_plan


async def noop(tx: object) -> None:
    pass


def test_a_migration_is_sql_for_both_sql_per_dialect_or_python() -> None:
    both = Migration(1, "create", "CREATE TABLE t (id BIGINT)")
    assert both.script("sqlite") == both.script("postgresql") == "CREATE TABLE t (id BIGINT)"
    split = Migration(2, "tune", postgresql="SELECT 'pg'", sqlite="SELECT 'lite'")
    assert (split.script("postgresql"), split.script("sqlite")) == ("SELECT 'pg'", "SELECT 'lite'")
    python = Migration(3, "backfill", run=noop)
    assert python.script("sqlite") is None
    assert python.checksum("sqlite") is None


def test_the_checksum_follows_the_sql_of_the_dialect_but_not_outer_whitespace() -> None:
    one = Migration(1, "a", "CREATE TABLE t (id BIGINT)")
    assert one.checksum("sqlite") == Migration(
        1, "b", "\n  CREATE TABLE t (id BIGINT);"[:-1]
    ).checksum("sqlite")
    assert one.checksum("sqlite") != Migration(1, "a", "CREATE TABLE t (id INT)").checksum("sqlite")
    split = Migration(1, "a", postgresql="SELECT 1", sqlite="SELECT 2")
    assert split.checksum("postgresql") != split.checksum("sqlite")


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((0, "zero", "SELECT 1"), {}, "integer >= 1"),
        ((True, "bool", "SELECT 1"), {}, "integer >= 1"),
        ((1, "", "SELECT 1"), {}, "needs a name"),
        ((1, "none"), {}, "give sql=, or postgresql= and sqlite=, or run="),
        ((1, "half"), {"postgresql": "SELECT 1"}, "give sql="),
        ((1, "two", "SELECT 1"), {"run": noop}, "give sql="),
    ],
)
def test_bad_migrations_are_refused_when_made(
    args: tuple[object, ...], kwargs: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        Migration(*args, **kwargs)  # type: ignore[arg-type]


def test_a_plan_is_checked_whole() -> None:
    first, second = Migration(1, "a", "SELECT 1"), Migration(2, "b", "SELECT 1")
    assert _check_plan({"jobs": (first, second), "chat": []}) == {
        "jobs": [first, second],
        "chat": [],
    }
    with pytest.raises(ValueError, match=r"'jobs'.*v1 comes after v2"):
        _check_plan({"jobs": [second, first]})
    with pytest.raises(ValueError, match="v1 comes after v1"):
        _check_plan({"jobs": [first, first]})
    with pytest.raises(TypeError, match="not a Migration"):
        _check_plan({"jobs": ["CREATE TABLE t"]})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="component name"):
        _check_plan({"": [first]})
    with pytest.raises(TypeError, match="mapping of component name"):
        _check_plan([first])  # type: ignore[arg-type]
