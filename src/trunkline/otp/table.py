"""Tables: rows in memory that processes share, owned by one process - Erlang's ETS.

A :class:`Table` holds *rows*: tuples whose element at ``keypos`` (default ``0``) is the key.
Its *kind* decides how many rows a key holds:

``"set"`` (the default)
    One row per key; inserting a row with a key already present replaces the old row.
``"ordered_set"``
    A set kept in key order: :meth:`~Table.to_list`, :meth:`~Table.select` and
    :meth:`~Table.first`/:meth:`~Table.next`/:meth:`~Table.last`/:meth:`~Table.prev` walk
    the keys sorted. Keys must be orderable among themselves; NaN, which is not even equal
    to itself, is refused.
``"bag"``
    Many rows per key, but never two identical rows.
``"duplicate_bag"``
    Many rows per key, identical ones included.

A table belongs to the process that creates it. With ``access="protected"`` (the default)
only the owner writes and every process reads; ``"public"`` lets every process write;
``"private"`` keeps the owner alone. When the owner ends, the table is deleted - unless it
has an *heir*: the heir then owns it and receives a :class:`TableTransfer` message, as does
the receiver of :meth:`Table.give_away`. Using a deleted table raises
:class:`~trunkline.otp.TableError`.

Every operation runs to completion without awaiting, so it is atomic with respect to other
processes: :meth:`~Table.insert_new_many` inserts all of its rows or none, and
:meth:`~Table.update_counter` never loses an increment.

Rows are stored as given, not copied as ETS copies them: keep what they hold immutable.

Example::

    scores = Table("ordered_set", name="scores", access="public")
    scores.insert(("alice", 3))
    scores.update_counter("alice", 2)          # 5
    scores.update_counter("bob", 1, default=("bob", 0))   # 1
    scores.to_list()                           # [("alice", 5), ("bob", 1)]
    scores.match((ANY, 5))                     # [("alice", 5)]
    whereis_table("scores") is scores          # True
"""

from __future__ import annotations

import itertools
from asyncio import current_task
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, NoReturn, TypeAlias
from weakref import WeakKeyDictionary

from .exceptions import TableError
from .node import Node, current_node
from .process import Pid, add_exit_hook, remove_exit_hook
from .process import self as self_pid

__all__ = ["ANY", "END_OF_TABLE", "Table", "TableInfo", "TableTransfer", "whereis_table"]

Row: TypeAlias = tuple[Any, ...]
Kind: TypeAlias = Literal["set", "ordered_set", "bag", "duplicate_bag"]
Access: TypeAlias = Literal["public", "protected", "private"]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        # Copies and unpickled sentinels are the sentinel itself: patterns compare with `is`.
        return self._name


ANY: Final[Any] = _Sentinel("ANY")
"""In a :meth:`Table.match` pattern, matches any value (Erlang's ``'_'``)."""

END_OF_TABLE: Final[Any] = _Sentinel("END_OF_TABLE")
"""What :meth:`Table.first`, :meth:`Table.next`... return past the last key."""

_MISSING: Final[Any] = _Sentinel("_MISSING")
# The read/write guard of a deleted table: never the running task, so every use is refused.
_DELETED: Final[Any] = _Sentinel("_DELETED")

_ACCESS = ("public", "protected", "private")
_ids = itertools.count(1)
_names: WeakKeyDictionary[Node, dict[Hashable, Table]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class TableTransfer:
    """The message a process gets when it becomes a table's owner (``'ETS-TRANSFER'``).

    ``from_pid`` is the previous owner: the one that called :meth:`Table.give_away`, or the
    one that died and left the table to its heir. ``heir_data`` is the ``data`` given to
    ``give_away``, or the table's ``heir_data``.
    """

    table: Table
    from_pid: Pid
    heir_data: Any


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What :meth:`Table.info` reports; ``owner`` is ``None`` once the table is deleted."""

    name: Hashable | None
    kind: Kind
    keypos: int
    access: Access
    owner: Pid | None
    heir: Pid | None
    size: int


def whereis_table(name: Hashable) -> Table | None:
    """The table created with ``name`` on the current node, or ``None``."""
    names = _names.get(current_node())
    return names.get(name) if names is not None else None


class Table:
    """A table of rows owned by the calling process; see the module documentation.

    Args:
        kind: ``"set"``, ``"ordered_set"``, ``"bag"`` or ``"duplicate_bag"``.
        name: make the table findable with :func:`whereis_table` on this node; the name is
            freed when the table is deleted.
        keypos: the index of the key in each row.
        access: ``"protected"`` (the owner writes, all read), ``"public"`` or ``"private"``.
        heir: the process that inherits the table when the owner dies (if it is alive then);
            without one, the table dies with its owner.
        heir_data: sent to the heir in its :class:`TableTransfer` message.

    Raises:
        ValueError: an unknown ``kind`` or ``access``, or a negative ``keypos``.
        TableError: another table on this node already has ``name``.

    Writes check that the caller may write only when the table is not public, and reads only
    when it is private: the other cases cost one attribute test.

    Example::

        async def cache() -> None:
            table = Table(name="cache")           # protected: the owner writes, all read
            table.insert(("greeting", "hello"))
            ...

        whereis_table("cache").get("greeting")    # ("greeting", "hello"), from any process
    """

    __slots__ = (
        "_access",
        "_heir",
        "_heir_data",
        "_id",
        "_keypos",
        "_loop",
        "_name",
        "_owner",
        "_reader",
        "_writer",
    )

    kind: ClassVar[Kind]
    _owner: Pid | None
    _heir: Pid | None
    # The task that may read (write) without question, or None when any task may.
    _reader: object
    _writer: object

    def __new__(cls, kind: Kind = "set", **options: Any) -> Table:
        # Each kind is its own class, so an operation is one method call, not a branch on
        # the kind each time.
        if cls is not Table:
            return object.__new__(cls)
        impl = _KINDS.get(kind)
        if impl is None:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        return object.__new__(impl)

    def __init__(
        self,
        kind: Kind = "set",
        *,
        name: Hashable | None = None,
        keypos: int = 0,
        access: Access = "protected",
        heir: Pid | None = None,
        heir_data: Any = None,
    ) -> None:
        if access not in _ACCESS:
            raise ValueError(f"access must be one of {', '.join(_ACCESS)}; got {access!r}")
        if type(keypos) is not int or keypos < 0:
            raise ValueError(f"keypos must be an int >= 0; got {keypos!r}")
        if heir is not None and type(heir) is not Pid:
            raise TypeError(f"heir must be a Pid or None; got {heir!r}")
        owner = self_pid()
        self._id = next(_ids)
        self._name = name
        self._keypos = keypos
        self._access = access
        self._heir = heir
        self._heir_data = heir_data
        self._loop = owner._node.loop
        self._clear()
        if name is not None:
            names = _names.setdefault(owner._node, {})
            holder = names.get(name)
            if holder is not None:
                raise TableError(f"a table named {name!r} already exists: {holder!r}")
            names[name] = self
        self._become_owner(owner)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """The row with ``key``, or ``default`` (``set`` and ``ordered_set`` only).

        The fast path for reading one row: a dict lookup, no list built.

        Raises:
            TableError: a bag table (use :meth:`lookup`), or no right to read.
        """
        raise TableError(f"{self!r}: get() needs a set or ordered_set; use lookup()")

    def lookup(self, key: Any) -> list[Row]:
        """The rows with ``key``: ``[]`` or one row for a set, in insertion order for a bag."""
        raise NotImplementedError

    def member(self, key: Any) -> bool:
        """Whether a row with ``key`` exists; ``key in table`` says the same."""
        raise NotImplementedError

    def __contains__(self, key: Any) -> bool:
        return self.member(key)

    def __len__(self) -> int:
        """The number of rows (not keys)."""
        if self._reader is not None:
            self._check_read()
        return self._count()

    def to_list(self) -> list[Row]:
        """Every row: in key order for an ordered_set, else in insertion order of the keys."""
        if self._reader is not None:
            self._check_read()
        return list(self._rows())

    def match(self, pattern: Row) -> list[Row]:
        """The rows that match ``pattern`` (Erlang's ``match_object``).

        A pattern is a tuple as long as the rows it matches. :data:`ANY` matches any value;
        a tuple element holding ``ANY`` matches tuples element by element; any other value
        matches what equals it. A pattern with its key bound looks up that key only; with
        ``ANY`` there, it scans the table.

        Example::

            table.match(("alice", ANY, ("admin", ANY)))
        """
        if self._reader is not None:
            self._check_read()
        key = pattern[self._keypos] if len(pattern) > self._keypos else ANY
        rows = self.lookup(key) if _is_bound(key) else self._rows()
        return [row for row in rows if _matches(row, pattern)]

    def select(self, predicate: Callable[[Row], bool]) -> list[Row]:
        """The rows for which ``predicate(row)`` is true, in :meth:`to_list` order."""
        if self._reader is not None:
            self._check_read()
        return [row for row in list(self._rows()) if predicate(row)]

    # -- walking keys (ordered_set) ---------------------------------------------------------------

    def first(self) -> Any:
        """The smallest key, or :data:`END_OF_TABLE` when the table is empty.

        Walking keys in order is for ``ordered_set`` tables; walk other kinds with
        :meth:`to_list` or :meth:`select`.

        Raises:
            TableError: not an ordered_set.
        """
        self._unordered("first")

    def last(self) -> Any:
        """The largest key, or :data:`END_OF_TABLE` when the table is empty."""
        self._unordered("last")

    def next(self, key: Any) -> Any:
        """The smallest key greater than ``key`` (present or not), or :data:`END_OF_TABLE`."""
        self._unordered("next")

    def prev(self, key: Any) -> Any:
        """The largest key less than ``key`` (present or not), or :data:`END_OF_TABLE`."""
        self._unordered("prev")

    def _unordered(self, operation: str) -> NoReturn:
        raise TableError(f"{self!r}: {operation}() walks an ordered_set; use to_list() or select()")

    # -- writing ----------------------------------------------------------------------------------

    def insert(self, row: Row) -> None:
        """Insert ``row``; in a set, it replaces the row with the same key.

        Raises:
            TypeError: ``row`` is not a tuple.
            IndexError: ``row`` has no element at ``keypos``.
            ValueError: in an ordered_set, a key that is not equal to itself (NaN).
            TableError: the caller may not write, or the table is deleted.
        """
        raise NotImplementedError

    def insert_many(self, rows: Iterable[Row]) -> None:
        """Insert each of ``rows``, as :meth:`insert` does; all of them, or none on an error."""
        raise NotImplementedError

    def insert_new(self, row: Row) -> bool:
        """Insert ``row`` unless a row with its key exists; return whether it was inserted."""
        if self._writer is not None:
            self._check_write()
        if not isinstance(row, tuple):
            _not_a_row(row)
        if self.member(row[self._keypos]):
            return False
        self.insert(row)
        return True

    def insert_new_many(self, rows: Iterable[Row]) -> bool:
        """Insert ``rows`` only if none of their keys exists; return whether they were."""
        if self._writer is not None:
            self._check_write()
        rows = _tuples(rows)
        keypos = self._keypos
        if any(self.member(row[keypos]) for row in rows):
            return False
        self.insert_many(rows)
        return True

    def update_counter(
        self, key: Any, incr: int = 1, *, pos: int | None = None, default: Row | None = None
    ) -> int:
        """Add ``incr`` to the integer at ``pos`` in the row with ``key``; return the sum.

        Args:
            key: the row's key.
            incr: the increment; negative to count down.
            pos: the element to update; by default the one after the key.
            default: the row to start from when ``key`` is missing (its key element is
                replaced by ``key``). Without one, a missing key raises ``KeyError``.

        Raises:
            KeyError: no row with ``key`` and no ``default``.
            TypeError: the element at ``pos`` is not an int.
            ValueError: ``pos`` is the key's position.
            TableError: a bag table, or the caller may not write.
        """
        raise TableError(f"{self!r}: update_counter() needs a set or ordered_set")

    def delete(self, key: Any) -> None:
        """Delete every row with ``key``; a missing key is not an error."""
        raise NotImplementedError

    def delete_object(self, row: Row) -> None:
        """Delete the rows equal to ``row`` (every copy, in a duplicate_bag)."""
        raise NotImplementedError

    def take(self, key: Any) -> list[Row]:
        """Delete the rows with ``key`` and return them."""
        raise NotImplementedError

    def select_delete(self, predicate: Callable[[Row], bool]) -> int:
        """Delete the rows for which ``predicate(row)`` is true; return how many."""
        if self._writer is not None:
            self._check_write()
        doomed = [row for row in list(self._rows()) if predicate(row)]
        for row in doomed:
            self.delete_object(row)
        return len(doomed)

    def delete_all_objects(self) -> None:
        """Delete every row; the table itself stays."""
        if self._writer is not None:
            self._check_write()
        self._clear()

    def drop(self) -> None:
        """Delete the table (ETS's ``delete/1``): its rows, its name, and its owner's claim.

        Raises:
            TableError: the caller may not write, or the table is already deleted.
        """
        if self._writer is not None:
            self._check_write()
        self._destroy()

    # -- ownership --------------------------------------------------------------------------------

    @property
    def name(self) -> Hashable | None:
        """The name given at creation, or ``None``."""
        return self._name

    @property
    def owner(self) -> Pid | None:
        """The owning process, or ``None`` once the table is deleted."""
        return self._owner

    def give_away(self, pid: Pid, data: Any = None) -> None:
        """Make ``pid`` the owner; it receives ``TableTransfer(table, caller, data)``.

        Raises:
            TableError: the caller is not the owner, ``pid`` is the owner, or ``pid`` is dead.
        """
        old = self._owned_by_caller("give away")
        if pid is old:
            raise TableError(f"{self!r} is already owned by {pid!r}")
        if not pid._alive:
            raise TableError(f"cannot give {self!r} to {pid!r}: it is not alive")
        remove_exit_hook(old, self)
        self._become_owner(pid)
        pid._deliver(TableTransfer(self, old, data))

    def set_heir(self, heir: Pid | None, data: Any = None) -> None:
        """Set (or with ``None``, remove) the process that inherits the table.

        Raises:
            TableError: the caller is not the owner.
        """
        self._owned_by_caller("set the heir of")
        self._heir = heir
        self._heir_data = data

    def info(self) -> TableInfo:
        """The table's name, kind, keypos, access, owner, heir and size (any process may ask)."""
        return TableInfo(
            name=self._name,
            kind=self.kind,
            keypos=self._keypos,
            access=self._access,
            owner=self._owner,
            heir=self._heir,
            size=self._count(),
        )

    def __repr__(self) -> str:
        name = f" {self._name!r}" if self._name is not None else ""
        return f"<Table #{self._id}{name} {self.kind}>"

    # -- the runtime's side -----------------------------------------------------------------------

    def _become_owner(self, owner: Pid) -> None:
        task = owner._task
        self._owner = owner
        self._writer = None if self._access == "public" else task
        self._reader = task if self._access == "private" else None
        add_exit_hook(owner, self, self._owner_exited)

    def _owner_exited(self, pid: Pid, reason: Any) -> None:
        heir = self._heir
        if heir is not None and heir is not pid and heir._alive:
            self._become_owner(heir)
            heir._deliver(TableTransfer(self, pid, self._heir_data))
        else:
            self._destroy()

    def _destroy(self) -> None:
        owner = self._owner
        if owner is None:
            return
        remove_exit_hook(owner, self)
        if self._name is not None:
            names = _names.get(owner._node)
            if names is not None and names.get(self._name) is self:
                del names[self._name]
        self._owner = None
        self._writer = self._reader = _DELETED
        self._clear()

    def _owned_by_caller(self, what: str) -> Pid:
        owner = self._owner
        if owner is None:
            self._refuse(what)
        if current_task(self._loop) is not owner._task:
            raise TableError(f"only the owner of {self!r}, {owner!r}, may {what} it")
        return owner

    def _check_write(self) -> None:
        if self._writer is not current_task(self._loop):
            self._refuse("write to")

    def _check_read(self) -> None:
        if self._reader is not current_task(self._loop):
            self._refuse("read")

    def _refuse(self, what: str) -> NoReturn:
        if self._owner is None:
            raise TableError(f"{self!r} has been deleted")
        raise TableError(
            f"{self!r} is {self._access}: only its owner {self._owner!r} may {what} it"
        )

    # -- storage, per kind ------------------------------------------------------------------------

    def _clear(self) -> None:
        raise NotImplementedError

    def _rows(self) -> Iterable[Row]:
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError


def _tuples(rows: Iterable[Row]) -> list[Row]:
    rows = list(rows)
    for row in rows:
        if not isinstance(row, tuple):
            raise TypeError(f"table rows are tuples; got {row!r}")
    return rows


def _not_a_row(row: Any) -> NoReturn:
    raise TypeError(f"table rows are tuples; got {row!r}")


def _is_bound(term: Any) -> bool:
    """Whether a pattern element holds no :data:`ANY`, so that it names one exact value."""
    if term is ANY:
        return False
    return type(term) is not tuple or all(_is_bound(t) for t in term)


def _matches(value: Any, pattern: Any) -> bool:
    if pattern is ANY:
        return True
    if type(pattern) is tuple:
        return (
            isinstance(value, tuple)
            and len(value) == len(pattern)
            and all(_matches(v, p) for v, p in zip(value, pattern, strict=True))
        )
    return bool(value == pattern)


class _Set(Table):
    __slots__ = ("_data",)

    kind: ClassVar[Kind] = "set"
    _data: dict[Any, Row]

    def get(self, key: Any, default: Any = None) -> Any:
        if self._reader is not None:
            self._check_read()
        return self._data.get(key, default)

    def lookup(self, key: Any) -> list[Row]:
        if self._reader is not None:
            self._check_read()
        row = self._data.get(key, _MISSING)
        return [] if row is _MISSING else [row]

    def member(self, key: Any) -> bool:
        if self._reader is not None:
            self._check_read()
        return key in self._data

    __contains__ = member

    def insert(self, row: Row) -> None:
        if self._writer is not None:
            self._check_write()
        if not isinstance(row, tuple):
            _not_a_row(row)
        self._data[row[self._keypos]] = row

    def insert_many(self, rows: Iterable[Row]) -> None:
        if self._writer is not None:
            self._check_write()
        keypos = self._keypos
        # Built aside first, so that a bad row (no key, unhashable key) changes nothing.
        self._data.update({row[keypos]: row for row in _tuples(rows)})

    def update_counter(
        self, key: Any, incr: int = 1, *, pos: int | None = None, default: Row | None = None
    ) -> int:
        if self._writer is not None:
            self._check_write()
        keypos = self._keypos
        if pos is None:
            pos = keypos + 1
        elif pos < 0 or pos == keypos:
            raise ValueError(f"update_counter() needs pos >= 0 and not the key's; got {pos}")
        row = self._data.get(key, _MISSING)
        if row is _MISSING:
            if default is None:
                raise KeyError(key)
            row = (*default[:keypos], key, *default[keypos + 1 :])
        value = row[pos]
        if type(value) is not int:
            raise TypeError(
                f"update_counter() needs an int at position {pos}; {self!r} has {row!r}"
            )
        value += incr
        self._put(key, (*row[:pos], value, *row[pos + 1 :]))
        return value

    def _put(self, key: Any, row: Row) -> None:
        self._data[key] = row

    def delete(self, key: Any) -> None:
        if self._writer is not None:
            self._check_write()
        self._data.pop(key, None)

    def delete_object(self, row: Row) -> None:
        if self._writer is not None:
            self._check_write()
        key = row[self._keypos]
        if self._data.get(key, _MISSING) == row:
            self.delete(key)

    def take(self, key: Any) -> list[Row]:
        if self._writer is not None:
            self._check_write()
        row = self._data.pop(key, _MISSING)
        return [] if row is _MISSING else [row]

    def _clear(self) -> None:
        self._data = {}

    def _rows(self) -> Iterable[Row]:
        return self._data.values()

    def _count(self) -> int:
        return len(self._data)


class _OrderedSet(_Set):
    __slots__ = ("_keys",)

    kind: ClassVar[Kind] = "ordered_set"
    # The keys, sorted: bisect finds a key's neighbours in O(log n).
    _keys: list[Any]

    def insert(self, row: Row) -> None:
        if self._writer is not None:
            self._check_write()
        if not isinstance(row, tuple):
            _not_a_row(row)
        self._put(row[self._keypos], row)

    def insert_many(self, rows: Iterable[Row]) -> None:
        if self._writer is not None:
            self._check_write()
        keypos = self._keypos
        batch = {row[keypos]: row for row in _tuples(rows)}
        data = self._data
        new = [key for key in batch if key not in data]
        if new:
            for key in new:
                if key != key:
                    self._unordered_key(key)
            # A merge of two sorted runs, in O(n); a key that cannot be compared with the
            # others fails here, before anything has changed.
            self._keys = sorted([*self._keys, *new])
        data.update(batch)

    def _put(self, key: Any, row: Row) -> None:
        data = self._data
        if key not in data:
            if key != key:
                self._unordered_key(key)
            insort(self._keys, key)
        data[key] = row

    def _unordered_key(self, key: Any) -> NoReturn:
        # NaN: unequal to itself and to everything, so bisect can neither place it nor find
        # it again; the sorted keys and the rows would drift apart.
        raise ValueError(
            f"{self!r}: {key!r} cannot be an ordered_set key: it is not equal to itself"
        )

    def delete(self, key: Any) -> None:
        if self._writer is not None:
            self._check_write()
        if self._data.pop(key, _MISSING) is not _MISSING:
            self._forget(key)

    def take(self, key: Any) -> list[Row]:
        if self._writer is not None:
            self._check_write()
        row = self._data.pop(key, _MISSING)
        if row is _MISSING:
            return []
        self._forget(key)
        return [row]

    def _forget(self, key: Any) -> None:
        keys = self._keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]
        else:
            # Keys that are only partly ordered (frozensets: "<" is "subset of") can throw
            # bisect off; a scan still finds the key, so the table stays whole.
            keys.remove(key)

    def select_delete(self, predicate: Callable[[Row], bool]) -> int:
        if self._writer is not None:
            self._check_write()
        data = self._data
        # Every predicate first, so that one that raises changes nothing; then one pass to
        # rebuild the sorted keys, not a deletion from the list for each row.
        keypos = self._keypos
        doomed = [row[keypos] for row in list(self._rows()) if predicate(row)]
        if doomed:
            for key in doomed:
                data.pop(key, None)
            self._keys = [key for key in self._keys if key in data]
        return len(doomed)

    def first(self) -> Any:
        if self._reader is not None:
            self._check_read()
        return self._keys[0] if self._keys else END_OF_TABLE

    def last(self) -> Any:
        if self._reader is not None:
            self._check_read()
        return self._keys[-1] if self._keys else END_OF_TABLE

    def next(self, key: Any) -> Any:
        if self._reader is not None:
            self._check_read()
        keys = self._keys
        i = bisect_right(keys, key)
        return keys[i] if i < len(keys) else END_OF_TABLE

    def prev(self, key: Any) -> Any:
        if self._reader is not None:
            self._check_read()
        keys = self._keys
        i = bisect_left(keys, key)
        return keys[i - 1] if i > 0 else END_OF_TABLE

    def _clear(self) -> None:
        self._data = {}
        self._keys = []

    def _rows(self) -> Iterator[Row]:
        data = self._data
        return (data[key] for key in self._keys)


class _Bag(Table):
    __slots__ = ("_data", "_size")

    kind: ClassVar[Kind] = "bag"
    _data: dict[Any, list[Row]]
    _size: int

    def lookup(self, key: Any) -> list[Row]:
        if self._reader is not None:
            self._check_read()
        rows = self._data.get(key)
        return [] if rows is None else rows.copy()

    def member(self, key: Any) -> bool:
        if self._reader is not None:
            self._check_read()
        return key in self._data

    __contains__ = member

    def _count(self) -> int:
        return self._size

    def insert(self, row: Row) -> None:
        if self._writer is not None:
            self._check_write()
        if not isinstance(row, tuple):
            _not_a_row(row)
        self._add(row[self._keypos], row)

    def insert_many(self, rows: Iterable[Row]) -> None:
        if self._writer is not None:
            self._check_write()
        keypos = self._keypos
        keyed = [(row[keypos], row) for row in _tuples(rows)]
        for key, _ in keyed:
            hash(key)  # an unhashable key fails here, before anything has changed
        for key, row in keyed:
            self._add(key, row)

    def _add(self, key: Any, row: Row) -> None:
        rows = self._data.get(key)
        if rows is None:
            self._data[key] = [row]
        elif row in rows:
            return
        else:
            rows.append(row)
        self._size += 1

    def delete(self, key: Any) -> None:
        if self._writer is not None:
            self._check_write()
        rows = self._data.pop(key, None)
        if rows is not None:
            self._size -= len(rows)

    def delete_object(self, row: Row) -> None:
        if self._writer is not None:
            self._check_write()
        key = row[self._keypos]
        rows = self._data.get(key)
        if rows is None:
            return
        kept = [r for r in rows if r != row]
        self._size -= len(rows) - len(kept)
        if kept:
            self._data[key] = kept
        else:
            del self._data[key]

    def take(self, key: Any) -> list[Row]:
        if self._writer is not None:
            self._check_write()
        rows = self._data.pop(key, None)
        if rows is None:
            return []
        self._size -= len(rows)
        return rows

    def _clear(self) -> None:
        self._data = {}
        self._size = 0

    def _rows(self) -> Iterator[Row]:
        return itertools.chain.from_iterable(self._data.values())


class _DuplicateBag(_Bag):
    __slots__ = ()

    kind: ClassVar[Kind] = "duplicate_bag"

    def _add(self, key: Any, row: Row) -> None:
        rows = self._data.get(key)
        if rows is None:
            self._data[key] = [row]
        else:
            rows.append(row)
        self._size += 1


_KINDS: dict[str, type[Table]] = {
    "set": _Set,
    "ordered_set": _OrderedSet,
    "bag": _Bag,
    "duplicate_bag": _DuplicateBag,
}
