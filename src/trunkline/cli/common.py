"""What the ``trunkline`` subcommands share: the ``--database`` and ``--json`` options, running
one action on a migrated database, and the way they print and fail.

Errors are one line on stderr: exit code 2 for invalid input, 1 for everything else (no such
row, the database unreachable), 130 for Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from trunkline import db, otp

__all__ = [
    "DEFAULT_DATABASE",
    "Database",
    "Json",
    "fail",
    "print_json",
    "run_on_database",
    "shorten",
    "stdout_console",
    "time_text",
]

T = TypeVar("T")

DEFAULT_DATABASE = "sqlite:///./trunkline.db"
"""The database of every command when neither ``--database`` nor ``$TRUNKLINE_DATABASE``
names one."""

Database = Annotated[
    str,
    typer.Option(
        "--database",
        "-d",
        envvar="TRUNKLINE_DATABASE",
        help="Database URL: sqlite:///path or postgresql://user@host/db.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def run_on_database(
    url: str,
    migrations: Mapping[str, Sequence[db.Migration]],
    action: Callable[[db.Database], Awaitable[T]],
    *,
    invalid: tuple[type[BaseException], ...] = (),
    failed: tuple[type[BaseException], ...] = (),
) -> T:
    """Run ``action`` on the database at ``url``, with ``migrations`` applied, on a node of
    its own; turn the errors people cause into one line and an exit code: ``invalid`` (and
    bad URLs and values) exit 2, ``failed`` (and database errors) exit 1."""
    invalid_input: tuple[type[BaseException], ...] = (
        db.InvalidURL,
        ValueError,
        OverflowError,
        *invalid,
    )
    failures: tuple[type[BaseException], ...] = (db.DatabaseError, *failed)
    try:
        with asyncio.Runner(loop_factory=otp.new_event_loop) as runner:
            return runner.run(_on_database(url, migrations, action))
    except invalid_input as error:
        fail(str(error), 2)
    except failures as error:
        fail(str(error), 1)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _on_database(
    url: str,
    migrations: Mapping[str, Sequence[db.Migration]],
    action: Callable[[db.Database], Awaitable[T]],
) -> T:
    database = await db.connect(url)
    try:
        await database.migrate(migrations)
        return await action(database)
    finally:
        await database.close()


def stdout_console() -> Console:
    """Where tables go: stdout as it is now (a test may have replaced it), wide enough for
    wide tables when it is not a terminal (a pipe, a file), where rich assumes 80."""
    # No markup: what is printed is data (arguments, errors, names), never rich's.
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:
        console.width = 160
    return console


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    line = " ".join(message.split())
    typer.echo(f"Error: {line}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data))


def time_text(moment: datetime) -> str:
    """A time as the tables show it: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
