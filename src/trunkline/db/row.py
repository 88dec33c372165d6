"""Rows: what ``fetch``, ``fetch_one`` and friends return, the same on both drivers.

Each driver returns its native row, extended so that both read alike: asyncpg's ``Record``
on PostgreSQL and ``sqlite3.Row`` on SQLite, each built by the driver in C with no copy. A
row is read by position, by column name, or as an attribute::

    row = await db.fetch_one("SELECT id, name FROM users WHERE id = $1", 7)
    row[0] == row["id"] == row.id
    dict(row)    # {"id": 7, "name": "ada"}
    tuple(row)   # (7, "ada")
    row == (7, "ada")

Attribute access works for every column whose name is not one of the row's methods
(``keys``, ``values``, ``items``, ``get``): read those with ``row["keys"]``.

A column that is not there: ``row.get(name)`` returns the default, ``row.name`` raises
``AttributeError``, and ``row[name]`` raises ``LookupError`` - a ``KeyError`` on PostgreSQL, an
``IndexError`` on SQLite, whose row is ``sqlite3.Row`` read in C (raising ``KeyError`` there
would put a Python call on every read, tripling its cost). Catch ``LookupError``, or use ``get``.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any, Protocol

__all__ = ["Row"]


class Row(Protocol):
    """A row of a result, read by position, column name or attribute; see the module."""

    def __getitem__(self, key: int | str, /) -> Any:
        """The value at a position or of a column; ``LookupError`` when there is none."""
        ...

    def __getattr__(self, name: str, /) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]:
        """The values, in column order."""
        ...

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def keys(self) -> KeysView[str] | list[str] | Iterator[str]: ...

    def values(self) -> ValuesView[Any] | list[Any] | Iterator[Any]: ...

    def items(self) -> ItemsView[str, Any] | list[tuple[str, Any]] | Iterator[tuple[str, Any]]: ...
