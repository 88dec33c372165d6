import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.otp import Pid, exit, monitor, receive, send, spawn
from trunkline.otp import self as self_pid
from trunkline.otp.exceptions import TableError
from trunkline.otp.table import (
    ANY,
    END_OF_TABLE,
    Table,
    TableInfo,
    TableTransfer,
    whereis_table,
)
from trunkline.otp.testing import run

# -- helpers: a process that runs what it is sent -------------------------------------------------


def _is_request(message: Any) -> bool:
    return type(message) is tuple and len(message) == 2 and callable(message[1])


def _is_result(message: Any) -> bool:
    return type(message) is tuple and len(message) == 2 and message[0] in ("ok", "error")


async def _serve() -> None:
    while True:
        caller, fn = await receive(_is_request)
        try:
            result = fn()
            if inspect.iscoroutine(result):
                result = await result
        except Exception as e:
            send(caller, ("error", e))
        else:
            send(caller, ("ok", result))


async def on(pid: Pid, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` inside process ``pid``; return what it returns or raise what it raises."""
    send(pid, (self_pid(), fn))
    tag, value = await receive(_is_result, timeout=5)
    if tag == "error":
        raise value
    return value


def _transfer(message: Any) -> bool:
    return type(message) is TableTransfer


async def _wait_dead(pid: Pid) -> None:
    monitor(pid)
    await receive(lambda m: getattr(m, "pid", None) is pid, timeout=5)


# -- kinds ----------------------------------------------------------------------------------------


async def test_set_holds_one_row_per_key() -> None:
    table = Table()
    table.insert(("a", 1))
    table.insert(("b", 2))
    table.insert(("a", 3))
    assert table.lookup("a") == [("a", 3)]
    assert table.get("a") == ("a", 3)
    assert table.lookup("zz") == []
    assert table.get("zz") is None
    assert table.get("zz", "none") == "none"
    assert len(table) == 2
    assert "b" in table
    assert table.member("b")
    assert "zz" not in table
    assert table.to_list() == [("a", 3), ("b", 2)]


async def test_rows_are_tuples_and_bad_batches_change_nothing() -> None:
    table = Table()
    with pytest.raises(TypeError, match="tuples"):
        table.insert(["a", 1])  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        table.insert(())
    with pytest.raises(TypeError, match="tuples"):
        table.insert_many([("a", 1), ["b", 2]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="unhashable"):
        table.insert_many([("a", 1), ([], 2)])
    assert table.to_list() == []


async def test_insert_new_inserts_all_or_nothing() -> None:
    table = Table()
    table.insert_many([("a", 1), ("b", 2)])
    assert table.insert_new(("a", 9)) is False
    assert table.get("a") == ("a", 1)
    assert table.insert_new(("c", 3)) is True
    assert table.insert_new_many([("d", 4), ("a", 0)]) is False
    assert "d" not in table
    assert table.insert_new_many([("d", 4), ("e", 5)]) is True
    assert len(table) == 5


async def test_keypos_picks_the_key_element() -> None:
    table = Table(keypos=1)
    table.insert(("x", "k", 10))
    table.insert(("y", "k", 20))
    assert table.get("k") == ("y", "k", 20)
    assert table.update_counter("k", 1) == 21
    assert table.match((ANY, "k", ANY)) == [("y", "k", 21)]


async def test_ordered_set_walks_keys_in_order() -> None:
    table = Table("ordered_set")
    for key in (5, 1, 3):
        table.insert((key, str(key)))
    assert table.to_list() == [(1, "1"), (3, "3"), (5, "5")]
    assert (table.first(), table.last()) == (1, 5)
    assert table.next(1) == 3
    assert table.next(2) == 3  # keys need not be present to walk from them
    assert table.next(5) is END_OF_TABLE
    assert table.prev(3) == 1
    assert table.prev(100) == 5
    assert table.prev(1) is END_OF_TABLE
    table.delete(3)
    assert table.next(1) == 5
    assert table.take(5) == [(5, "5")]
    table.delete_object((1, "1"))
    assert table.first() is END_OF_TABLE
    assert table.last() is END_OF_TABLE


async def test_ordered_set_insert_many_merges_in_order_or_fails_whole() -> None:
    table = Table("ordered_set")
    table.insert_many([(4, "d"), (2, "b")])
    table.insert_many([(3, "c"), (1, "a"), (4, "D")])
    assert table.to_list() == [(1, "a"), (2, "b"), (3, "c"), (4, "D")]
    with pytest.raises(TypeError):
        table.insert_many([(5, "e"), ("six", "f")])
    assert [row[0] for row in table.to_list()] == [1, 2, 3, 4]
    assert table.select(lambda row: row[0] % 2 == 0) == [(2, "b"), (4, "D")]


async def test_walking_keys_needs_an_ordered_set() -> None:
    table = Table("set")
    with pytest.raises(TableError, match="ordered_set"):
        table.first()
    with pytest.raises(TableError, match="ordered_set"):
        table.next("a")


async def test_bag_keeps_distinct_rows_and_duplicate_bag_keeps_all() -> None:
    bag, dup = Table("bag"), Table("duplicate_bag")
    for table in (bag, dup):
        table.insert_many([("k", 1), ("k", 2), ("k", 1), ("j", 1)])
    assert bag.lookup("k") == [("k", 1), ("k", 2)]
    assert len(bag) == 3
    assert dup.lookup("k") == [("k", 1), ("k", 2), ("k", 1)]
    assert len(dup) == 4
    assert dup.to_list() == [("k", 1), ("k", 2), ("k", 1), ("j", 1)]

    dup.delete_object(("k", 1))  # every copy
    assert dup.lookup("k") == [("k", 2)]
    assert len(dup) == 2

    bag.lookup("k").append(("k", 99))  # a copy: the table is not changed through it
    assert bag.take("k") == [("k", 1), ("k", 2)]
    assert "k" not in bag
    assert len(bag) == 1
    assert bag.insert_new(("j", 2)) is False
    bag.delete("j")
    assert len(bag) == 0


async def test_bags_have_no_get_or_counters() -> None:
    bag = Table("bag")
    bag.insert(("k", 1))
    with pytest.raises(TableError, match="lookup"):
        bag.get("k")
    with pytest.raises(TableError, match="set"):
        bag.update_counter("k")


async def test_delete_and_delete_object() -> None:
    table = Table()
    table.insert_many([("a", 1), ("b", 2)])
    table.delete_object(("a", 2))  # same key, other row: kept
    assert table.get("a") == ("a", 1)
    table.delete_object(("a", 1))
    assert "a" not in table
    table.delete("missing")
    table.delete("b")
    assert table.to_list() == []
    assert table.take("b") == []


# -- counters -------------------------------------------------------------------------------------


async def test_update_counter() -> None:
    table = Table()
    table.insert(("hits", 0, 10))
    assert table.update_counter("hits") == 1
    assert table.update_counter("hits", 5) == 6
    assert table.update_counter("hits", -2, pos=2) == 8
    assert table.get("hits") == ("hits", 6, 8)

    with pytest.raises(KeyError):
        table.update_counter("missing")
    assert table.update_counter("new", 3, default=("ignored", 10)) == 13
    assert table.get("new") == ("new", 13)

    table.insert(("name", "x"))
    with pytest.raises(TypeError, match="int at position 1"):
        table.update_counter("name")
    with pytest.raises(ValueError, match="pos"):
        table.update_counter("hits", pos=0)


async def test_update_counter_default_keeps_ordered_set_order() -> None:
    table = Table("ordered_set")
    table.insert(("b", 1))
    assert table.update_counter("a", 1, default=("?", 0)) == 1
    assert table.first() == "a"
    assert table.to_list() == [("a", 1), ("b", 1)]


# -- match and select -----------------------------------------------------------------------------


async def test_match_with_wildcards() -> None:
    table = Table("ordered_set")
    alice = (1, "alice", ("admin", 30))
    bob = (2, "bob", ("user", 25))
    carol = (3, "carol", ("admin", 41))
    dave = (4, "dave")
    table.insert_many([alice, bob, carol, dave])
    assert table.match((ANY, ANY, ("admin", ANY))) == [alice, carol]
    assert table.match((2, ANY, ANY)) == [bob]
    assert table.match((ANY, "bob", ("user", 25))) == [bob]
    assert table.match((ANY, ANY)) == [dave]  # patterns match rows of their own length
    assert table.match((9, ANY, ANY)) == []
    assert table.match(()) == []


async def test_match_on_a_bag_with_a_bound_key() -> None:
    bag = Table("bag")
    bag.insert_many([("k", 1, "x"), ("k", 2, "y"), ("j", 1, "x")])
    assert bag.match(("k", ANY, "x")) == [("k", 1, "x")]
    assert bag.match((ANY, 1, ANY)) == [("k", 1, "x"), ("j", 1, "x")]


async def test_select_and_select_delete() -> None:
    table = Table("duplicate_bag")
    table.insert_many([("a", 1), ("a", 1), ("b", 2), ("c", 3)])
    assert table.select(lambda row: row[1] >= 2) == [("b", 2), ("c", 3)]
    assert table.select_delete(lambda row: row[1] % 2 == 1) == 3
    assert table.to_list() == [("b", 2)]
    assert len(table) == 1


async def test_select_delete_on_an_ordered_set_keeps_the_order() -> None:
    table = Table("ordered_set")
    table.insert_many([(key, key % 3) for key in range(30, 0, -1)])
    assert table.select_delete(lambda row: row[1] == 0) == 10
    assert table.to_list() == [(key, key % 3) for key in range(1, 31) if key % 3]
    assert (table.first(), table.next(1), table.last()) == (1, 2, 29)
    with pytest.raises(ZeroDivisionError):
        table.select_delete(lambda row: 1 / (row[0] - 29) > 0)  # fails on the last row
    assert len(table) == 20  # the rows before it were not deleted


async def test_an_ordered_set_refuses_nan_keys() -> None:
    # NaN is not equal to itself: bisect could neither place it nor find it again.
    table = Table("ordered_set")
    table.insert_many([(1.0, "a"), (2.0, "b")])
    with pytest.raises(ValueError, match="nan"):
        table.insert((math.nan, "c"))
    with pytest.raises(ValueError, match="nan"):
        table.insert_many([(3.0, "d"), (math.nan, "e")])
    with pytest.raises(ValueError, match="nan"):
        table.update_counter(math.nan, 1, default=(0.0, 0))
    assert table.to_list() == [(1.0, "a"), (2.0, "b")]
    table.delete(math.nan)  # a missing key: not an error
    table.delete(1.0)
    assert table.to_list() == [(2.0, "b")]


async def test_an_ordered_set_of_partly_ordered_keys_stays_whole() -> None:
    # frozenset's "<" means "proper subset": bisect may look in the wrong place.
    table = Table("ordered_set")
    keys = [frozenset({1}), frozenset({2}), frozenset({1, 2}), frozenset({3})]
    for key in keys:
        table.insert((key,))
    for key in keys:
        table.delete(key)
        assert len(table.to_list()) == len(table)
    assert table.to_list() == []


# -- lifetime -------------------------------------------------------------------------------------


async def test_delete_all_objects_then_drop() -> None:
    table = Table(name="tmp")
    table.insert(("a", 1))
    table.delete_all_objects()
    assert len(table) == 0
    table.insert(("b", 2))
    table.drop()
    assert whereis_table("tmp") is None
    assert table.owner is None
    assert table.info().size == 0
    for use in (
        lambda: table.get("b"),
        lambda: table.insert(("c", 3)),
        lambda: len(table),
        table.to_list,
        table.drop,
    ):
        with pytest.raises(TableError, match=r"<Table #\d+ 'tmp' set> has been deleted"):
            use()
    assert whereis_table("tmp") is None
    assert Table(name="tmp") is whereis_table("tmp")  # the name is free again


async def test_named_tables() -> None:
    table = Table(name="sessions")
    assert whereis_table("sessions") is table
    assert table.name == "sessions"
    assert whereis_table("nope") is None
    with pytest.raises(TableError, match="'sessions' already exists"):
        Table(name="sessions")


async def test_info() -> None:
    heir = spawn(_serve)
    table = Table("bag", name="x", keypos=1, access="public", heir=heir)
    table.insert_many([("v", "k"), ("w", "k")])
    assert table.info() == TableInfo(
        name="x", kind="bag", keypos=1, access="public", owner=self_pid(), heir=heir, size=2
    )
    assert repr(table).endswith("'x' bag>")


async def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="kind must be one of set, ordered_set"):
        Table("heap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="access"):
        Table(access="open")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keypos"):
        Table(keypos=-1)
    with pytest.raises(TypeError, match="heir"):
        Table(heir="someone")  # type: ignore[arg-type]


# -- access rights --------------------------------------------------------------------------------


async def test_protected_table_is_read_by_all_and_written_by_its_owner() -> None:
    table = Table(name="prot")
    table.insert(("a", 1))
    other = spawn(_serve)
    assert await on(other, lambda: table.get("a")) == ("a", 1)
    assert await on(other, lambda: table.match((ANY, 1))) == [("a", 1)]
    with pytest.raises(TableError, match=r"'prot' set> is protected: only its owner <0\.\d+\.0>"):
        await on(other, lambda: table.insert(("b", 2)))
    with pytest.raises(TableError, match="protected"):
        await on(other, table.drop)
    assert table.to_list() == [("a", 1)]


async def test_private_table_is_the_owners_alone() -> None:
    table = Table(access="private")
    table.insert(("a", 1))
    other = spawn(_serve)
    with pytest.raises(TableError, match="private"):
        await on(other, lambda: table.get("a"))
    with pytest.raises(TableError, match="private"):
        await on(other, lambda: len(table))
    assert (await on(other, table.info)).size == 1
    assert table.get("a") == ("a", 1)


async def test_public_table_is_written_by_anyone() -> None:
    table = Table(access="public")
    other = spawn(_serve)
    await on(other, lambda: table.insert(("a", 1)))
    assert await on(other, lambda: table.update_counter("a", 1)) == 2
    assert table.get("a") == ("a", 2)
    await on(other, table.drop)
    with pytest.raises(TableError, match="deleted"):
        table.get("a")


# -- ownership ------------------------------------------------------------------------------------


async def test_table_dies_with_its_owner() -> None:
    owner = spawn(_serve)
    table = await on(owner, lambda: Table(name="owned"))
    await on(owner, lambda: table.insert(("a", 1)))
    exit(owner, "kill")
    with pytest.raises(TableError, match="deleted"):
        table.get("a")
    assert whereis_table("owned") is None


async def test_table_dies_when_its_owner_returns() -> None:
    async def make_and_return(parent: Pid) -> None:
        send(parent, Table())

    owner = spawn(make_and_return, self_pid())
    table = await receive(timeout=5)
    await _wait_dead(owner)
    assert table.owner is None


async def test_heir_inherits_when_the_owner_dies() -> None:
    owner, heir = spawn(_serve), spawn(_serve)
    table = await on(owner, lambda: Table(heir=heir, heir_data="take care"))
    await on(owner, lambda: table.insert(("a", 1)))
    exit(owner, "kill")

    message = await on(heir, lambda: receive(_transfer, timeout=5))
    assert message == TableTransfer(table, owner, "take care")
    assert table.owner is heir
    assert table.info().heir is heir
    await on(heir, lambda: table.insert(("b", 2)))
    assert table.to_list() == [("a", 1), ("b", 2)]
    with pytest.raises(TableError, match="protected"):
        table.insert(("c", 3))

    exit(heir, "kill")  # the heir owns it now: nobody is left to inherit
    assert table.owner is None


async def test_a_dead_heir_inherits_nothing() -> None:
    owner, heir = spawn(_serve), spawn(_serve)
    table = await on(owner, lambda: Table(heir=heir))
    exit(heir, "kill")
    exit(owner, "kill")
    assert table.owner is None


async def test_set_heir() -> None:
    owner, heir = spawn(_serve), spawn(_serve)
    table = await on(owner, Table)
    with pytest.raises(TableError, match="only the owner"):
        table.set_heir(heir)
    await on(owner, lambda: table.set_heir(heir, "data"))
    exit(owner, "kill")
    assert await on(heir, lambda: receive(_transfer, timeout=5)) == TableTransfer(
        table, owner, "data"
    )


async def test_give_away() -> None:
    me = self_pid()
    table = Table(name="gift")
    table.insert(("a", 1))
    receiver = spawn(_serve)
    table.give_away(receiver, "yours")
    assert table.owner is receiver
    with pytest.raises(TableError, match="protected"):
        table.insert(("b", 2))
    with pytest.raises(TableError, match="only the owner"):
        table.give_away(me)

    message = await on(receiver, lambda: receive(_transfer, timeout=5))
    assert message == TableTransfer(table, me, "yours")
    await on(receiver, lambda: table.insert(("b", 2)))
    with pytest.raises(TableError, match="already owned"):
        await on(receiver, lambda: table.give_away(receiver))

    dead = spawn(_serve)
    exit(dead, "kill")
    with pytest.raises(TableError, match="not alive"):
        await on(receiver, lambda: table.give_away(dead))

    exit(receiver, "kill")
    assert whereis_table("gift") is None


async def test_the_old_owner_no_longer_holds_a_given_table() -> None:
    owner, receiver = spawn(_serve), spawn(_serve)
    table = await on(owner, Table)
    await on(owner, lambda: table.give_away(receiver))
    exit(owner, "kill")
    assert table.owner is receiver
    await on(receiver, lambda: table.insert(("still", "here")))


# -- an ordered_set against a model ---------------------------------------------------------------

_keys = st.integers(min_value=0, max_value=20)
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), _keys, st.integers()),
        st.tuples(st.just("delete"), _keys),
        st.tuples(st.just("take"), _keys),
        st.tuples(st.just("count"), _keys, st.integers(-5, 5)),
        st.tuples(st.just("many"), st.lists(_keys, max_size=5)),
        st.tuples(st.just("purge"), st.integers(2, 4)),
    ),
    max_size=60,
)


def _value_divisible_by(divisor: int) -> Callable[[tuple[Any, ...]], bool]:
    return lambda row: row[1] % divisor == 0


@settings(max_examples=60, deadline=None)
@given(_operations)
def test_ordered_set_behaves_like_a_sorted_dict(operations: list[tuple[Any, ...]]) -> None:
    async def main() -> None:
        table = Table("ordered_set")
        model: dict[int, int] = {}
        for operation in operations:
            match operation:
                case ("insert", key, value):
                    table.insert((key, value))
                    model[key] = value
                case ("delete", key):
                    table.delete(key)
                    model.pop(key, None)
                case ("take", key):
                    expected = [(key, model.pop(key))] if key in model else []
                    assert table.take(key) == expected
                case ("count", key, incr):
                    model[key] = model.get(key, 0) + incr
                    assert table.update_counter(key, incr, default=(key, 0)) == model[key]
                case ("many", keys):
                    table.insert_many([(key, -key) for key in keys])
                    model.update((key, -key) for key in keys)
                case ("purge", divisor):
                    doomed = [key for key, value in model.items() if value % divisor == 0]
                    deleted = table.select_delete(_value_divisible_by(divisor))
                    assert deleted == len(doomed)
                    for key in doomed:
                        del model[key]
        assert table.to_list() == sorted(model.items())
        assert len(table) == len(model)
        walked, key = [], table.first()
        while key is not END_OF_TABLE:
            walked.append(key)
            key = table.next(key)
        assert walked == sorted(model)
        back, key = [], table.last()
        while key is not END_OF_TABLE:
            back.append(key)
            key = table.prev(key)
        assert back == sorted(model, reverse=True)

    run(main)
