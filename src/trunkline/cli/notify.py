"""``trunkline notify ...``: the notification system's records from a shell.

Deliveries (filtered by user, event, status, channel, category) and their status
histories, events and their deliveries, and users' preferences, read from the database
given by ``--database`` (or ``$TRUNKLINE_DATABASE``) as ``trunkline jobs`` does: each command
runs the ``"jobs"`` and ``"notify"`` migrations if they are not applied yet, does one thing
and closes the database. None needs a running node.

Sending is not here: a send needs the notifier's configuration (categories, channels,
templates), which the node holds; events are sent by the application or over the HTTP API.

Errors follow ``trunkline jobs``: one line on stderr, exit code 2 for invalid input (an
unknown status, ``on``/``off`` misspelt, an id out of range), 1 for everything else (no such
delivery or event, the database unreachable). See ``docs/cli.md``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from trunkline import db, jobs, notify

from .common import (
    DEFAULT_DATABASE,
    Database,
    Json,
    fail,
    print_json,
    run_on_database,
    shorten,
    stdout_console,
    time_text,
)

__all__ = ["app"]

T = TypeVar("T")

_MAX_ID = 2**63 - 1

app = typer.Typer(
    name="notify",
    help="Inspect notification deliveries and events, and users' preferences.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _check_id(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= _MAX_ID:
        fail(f"an id is an integer from 1 to {_MAX_ID}, not {value}", 2)
    return value


def _check_user(value: int | None) -> int | None:
    if value is not None and not -_MAX_ID <= value <= _MAX_ID:
        fail(f"a user id is a 64-bit integer, not {value}", 2)
    return value


DeliveryId = Annotated[
    int, typer.Argument(help="The delivery's id.", show_default=False, callback=_check_id)
]
EventId = Annotated[
    int, typer.Argument(help="The event's id.", show_default=False, callback=_check_id)
]
UserId = Annotated[
    int, typer.Argument(help="The user's id.", show_default=False, callback=_check_user)
]
Limit = Annotated[int, typer.Option("--limit", "-n", help="At most this many (1 to 10000).")]

_DELIVERY_COLUMNS = (
    "d.id, d.event_id, d.user_id, d.channel, d.address, d.status, d.reason, d.scheduled_at, "
    "d.job_id, d.provider_id, d.attempts, d.created_at, d.updated_at, e.category"
)
_EVENT_COLUMNS = (
    "e.id, e.category, e.actor_id, e.payload, e.idempotency_key, e.critical, e.send_at, "
    "e.created_at, (SELECT count(DISTINCT d.user_id) FROM notify_deliveries AS d "
    "WHERE d.event_id = e.id) AS recipients"
)
_GET_EVENT = db.Query(
    "notify.cli.event", f"SELECT {_EVENT_COLUMNS} FROM notify_events AS e WHERE e.id = $1"
)


# -- commands ----------------------------------------------------------------------------------


@app.command()
def deliveries(
    user: Annotated[
        int | None, typer.Option("--user", "-u", help="Only this user's.", callback=_check_user)
    ] = None,
    event: Annotated[
        int | None, typer.Option("--event", "-e", help="Only this event's.", callback=_check_id)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", "-s", help=f"One of: {', '.join(notify.STATUSES)}."),
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", "-c", help="Only this channel (email, inapp...).")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category (chat.mention...).")
    ] = None,
    limit: Limit = 20,
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """List deliveries, newest first.

    Example: trunkline notify deliveries --user 7 --status failed
    """
    if status is not None and status not in notify.STATUSES:
        fail(f"--status must be one of {', '.join(notify.STATUSES)}, not {status!r}", 2)
    _check_limit(limit)
    filters = {
        "d.user_id": user,
        "d.event_id": event,
        "d.status": status,
        "d.channel": channel,
        "e.category": category,
    }
    found = _run(database, lambda conn: _find_deliveries(conn, filters, limit))
    if as_json:
        print_json([_delivery_json(delivery) for delivery in found])
        return
    stdout_console().print(_deliveries_table(found) if found else "No deliveries.")


@app.command()
def delivery(
    delivery_id: DeliveryId, database: Database = DEFAULT_DATABASE, as_json: Json = False
) -> None:
    """Show a delivery and every status it went through.

    Example: trunkline notify delivery 42
    """

    async def run(conn: db.Database) -> tuple[notify.Delivery, list[notify.HistoryEntry]] | None:
        found = await notify.get_delivery(conn, delivery_id)
        if found is None:
            return None
        return found, await notify.delivery_history(conn, delivery_id)

    result = _run(database, run)
    if result is None:
        fail(f"no delivery {delivery_id}", 1)
    found, history = result
    if as_json:
        data = _delivery_json(found)
        data["history"] = [_history_json(entry) for entry in history]
        print_json(data)
        return
    fields = Table(show_header=False, box=None)
    for name, value in _delivery_json(found).items():
        fields.add_row(name, "" if value is None else str(value))
    steps = Table("status", "at", "detail", title="history")
    for entry in history:
        steps.add_row(entry.status, time_text(entry.at), entry.detail or "")
    stdout_console().print(fields)
    stdout_console().print(steps)


@app.command()
def events(
    category: Annotated[str | None, typer.Option("--category", help="Only this category.")] = None,
    limit: Limit = 20,
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """List recent events, newest first, with how many users each was for.

    Example: trunkline notify events --category chat.mention
    """
    _check_limit(limit)
    found = _run(database, lambda conn: _find_events(conn, category, limit))
    if as_json:
        print_json([event.to_json() for event in found])
        return
    if not found:
        stdout_console().print("No events.")
        return
    table = Table("id", "category", "recipients", "actor", "critical", "key", "created")
    for event in found:
        table.add_row(
            str(event.id),
            event.category,
            str(event.recipients),
            "" if event.actor_id is None else str(event.actor_id),
            "yes" if event.critical else "",
            shorten(event.idempotency_key or ""),
            time_text(event.created_at),
        )
    stdout_console().print(table)


@app.command()
def event(event_id: EventId, database: Database = DEFAULT_DATABASE, as_json: Json = False) -> None:
    """Show an event, its payload and its deliveries.

    Example: trunkline notify event 12
    """

    async def run(conn: db.Database) -> tuple[Event, list[notify.Delivery]] | None:
        row = await conn.fetch_one(_GET_EVENT, event_id)
        if row is None:
            return None
        return _event(row), await notify.list_deliveries(conn, event_id)

    result = _run(database, run)
    if result is None:
        fail(f"no event {event_id}", 1)
    found, made = result
    if as_json:
        data = found.to_json()
        data["deliveries"] = [_delivery_json(delivery) for delivery in made]
        print_json(data)
        return
    fields = Table(show_header=False, box=None)
    for name, value in found.to_json().items():
        shown = json.dumps(value) if isinstance(value, dict) else value
        fields.add_row(name, "" if shown is None else str(shown))
    stdout_console().print(fields)
    stdout_console().print(_deliveries_table(made) if made else "No deliveries.")


@app.command()
def preferences(
    user_id: UserId, database: Database = DEFAULT_DATABASE, as_json: Json = False
) -> None:
    """Show what USER chose (category x channel on or off), their settings and addresses.

    A user who chose nothing for a category gets its defaults from the configuration.

    Example: trunkline notify preferences 7
    """

    async def run(
        conn: db.Database,
    ) -> tuple[dict[tuple[str, str | None], bool], notify.UserSettings, dict[str, str]]:
        return (
            await notify.get_preferences(conn, user_id),
            await notify.get_user_settings(conn, user_id),
            await notify.get_addresses(conn, user_id),
        )

    chosen, settings, addresses = _run(database, run)
    rows = sorted(chosen.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    if as_json:
        print_json(
            {
                "user_id": user_id,
                "preferences": [
                    {"category": category, "channel": channel, "enabled": enabled}
                    for (category, channel), enabled in rows
                ],
                "time_zone": settings.time_zone,
                "locale": settings.locale,
                "quiet_hours": None
                if settings.quiet_hours is None
                else settings.quiet_hours.to_json(),
                "addresses": addresses,
            }
        )
        return
    if rows:
        table = Table("category", "channel", "enabled")
        for (category, channel), enabled in rows:
            table.add_row(category, channel or "all", "on" if enabled else "off")
        stdout_console().print(table)
    else:
        stdout_console().print(f"User {user_id} chose nothing: every category's defaults apply.")
    hours = "none" if settings.quiet_hours is None else json.dumps(settings.quiet_hours.to_json())
    stdout_console().print(
        f"time zone: {settings.time_zone or 'default'}, locale: {settings.locale or 'default'}, "
        f"quiet hours: {hours}"
    )
    for name, address in sorted(addresses.items()):
        stdout_console().print(f"{name}: {address}")


@app.command("set-preference")
def set_preference(
    user_id: UserId,
    category: Annotated[str, typer.Argument(help="The category (chat.mention...).")],
    channel: Annotated[
        str, typer.Argument(help="The channel (email, inapp...), or 'all' for every channel.")
    ],
    state: Annotated[str, typer.Argument(help="on or off.", metavar="on|off")],
    database: Database = DEFAULT_DATABASE,
    as_json: Json = False,
) -> None:
    """Turn CATEGORY on or off for USER on CHANNEL ('all': every channel of it).

    A channel's own choice wins over the one for all channels.

    Example: trunkline notify set-preference 7 chat.mention email off
    """
    if state not in ("on", "off"):
        fail(f"the state must be on or off, not {state!r}", 2)
    enabled = state == "on"
    on_channel = None if channel == "all" else channel

    async def run(conn: db.Database) -> None:
        await notify.set_preference(conn, user_id, category, on_channel, enabled)

    _run(database, run)
    if as_json:
        print_json(
            {"user_id": user_id, "category": category, "channel": on_channel, "enabled": enabled}
        )
    else:
        where = "every channel" if on_channel is None else on_channel
        stdout_console().print(f"User {user_id}: {category} on {where} is {state}.")


# -- what the commands show ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An event as listed: what ``send`` stored, and how many users it was for."""

    id: int
    category: str
    actor_id: int | None
    payload: dict[str, Any]
    idempotency_key: str | None
    critical: bool
    send_at: datetime | None
    created_at: datetime
    recipients: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "actor_id": self.actor_id,
            "recipients": self.recipients,
            "idempotency_key": self.idempotency_key,
            "critical": self.critical,
            "send_at": _iso(self.send_at),
            "created_at": _iso(self.created_at),
            "payload": self.payload,
        }


def _event(row: db.Row) -> Event:
    return Event(
        id=row["id"],
        category=row["category"],
        actor_id=row["actor_id"],
        payload=json.loads(row["payload"]),
        idempotency_key=row["idempotency_key"],
        critical=bool(row["critical"]),
        send_at=row["send_at"],
        created_at=row["created_at"],
        recipients=int(row["recipients"]),
    )


async def _find_events(conn: db.Database, category: str | None, limit: int) -> list[Event]:
    where, args = ("WHERE e.category = $1 ", [category]) if category is not None else ("", [])
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM notify_events AS e {where}"
        f"ORDER BY e.id DESC LIMIT ${len(args) + 1}",
        *args,
        limit,
    )
    return [_event(row) for row in rows]


async def _find_deliveries(
    conn: db.Database, filters: dict[str, Any], limit: int
) -> list[notify.Delivery]:
    """Deliveries matching the filters given (column -> value; ``None``: any), newest first."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    args.append(limit)
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    rows = await conn.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM notify_deliveries AS d "
        f"JOIN notify_events AS e ON e.id = d.event_id {condition}"
        f"ORDER BY d.id DESC LIMIT ${len(args)}",
        *args,
    )
    return [notify.Delivery.from_row(row) for row in rows]


def _deliveries_table(found: list[notify.Delivery]) -> Table:
    table = Table(
        "id", "event", "user", "category", "channel", "status", "reason", "attempts", "updated"
    )
    for item in found:
        table.add_row(
            str(item.id),
            str(item.event_id),
            str(item.user_id),
            item.category,
            item.channel,
            item.status,
            item.reason or "",
            str(item.attempts),
            time_text(item.updated_at),
        )
    return table


def _delivery_json(item: notify.Delivery) -> dict[str, Any]:
    return {
        "id": item.id,
        "event_id": item.event_id,
        "user_id": item.user_id,
        "category": item.category,
        "channel": item.channel,
        "address": item.address,
        "status": item.status,
        "reason": item.reason,
        "scheduled_at": _iso(item.scheduled_at),
        "job_id": item.job_id,
        "provider_id": item.provider_id,
        "attempts": item.attempts,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def _history_json(entry: notify.HistoryEntry) -> dict[str, Any]:
    return {"status": entry.status, "at": _iso(entry.at), "detail": entry.detail}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# -- plumbing -----------------------------------------------------------------------------------


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 10_000:
        fail(f"--limit must be 1 or more, and at most 10000, not {limit}", 2)


def _run(url: str, action: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``action`` on the database at ``url``, with the job queue's and notify's
    migrations applied."""
    return run_on_database(
        url,
        {jobs.COMPONENT: jobs.MIGRATIONS, notify.COMPONENT: notify.MIGRATIONS},
        action,
        invalid=(notify.InvalidNotification,),
        failed=(notify.NotifyError,),
    )
