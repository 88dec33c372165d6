"""``trunkline notify ...``: deliveries and events sent by a real notifier and run by the real
queue, listed, filtered and inspected through typer's runner and checked against the public
API, on SQLite and PostgreSQL; preferences set and shown; the console script in a
subprocess; bad input (one line, exit code 2 or 1, nothing changed).

The commands run their own event loop, so these tests are sync and on real time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from trunkline import db, jobs, notify, otp
from trunkline.cli import app
from trunkline.jobs.testing import drain

T = TypeVar("T")

SECRET = "a secret of the command line's tests"


def invoke(url: str, *args: str) -> Result:
    """``trunkline notify <args> --database <url>``, in this process."""
    return CliRunner().invoke(app, ["notify", *args, "--database", url])


def invoke_json(url: str, *args: str) -> Any:
    result = invoke(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def on_database(url: str, action: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``action`` on the migrated database at ``url``, on a node of its own."""

    async def main() -> T:
        async with await db.connect(url) as database:
            await database.migrate(
                {jobs.COMPONENT: jobs.MIGRATIONS, notify.COMPONENT: notify.MIGRATIONS}
            )
            return await action(database)

    with asyncio.Runner(loop_factory=otp.new_event_loop) as runner:
        return runner.run(main())


class Refusing:
    """A webhook channel whose receiver refuses every request for good."""

    name = "webhook"

    async def send(self, envelope: notify.Envelope, message: notify.Rendered) -> notify.Sent:
        raise notify.PermanentFailure("400 no such hook")


@dataclass
class Sent:
    """What :func:`seed` sent: the events' results."""

    mention: notify.EventResult
    direct: notify.EventResult


def seed(url: str) -> Sent:
    """Two events through a notifier, their jobs run: a mention for users 7 and 8 (7 has no
    webhook address: suppressed; 8's webhook refuses: failed), a direct message for 8 alone
    (critical, with a key)."""

    async def run(database: db.Database) -> Sent:
        config = notify.NotifyConfig(
            categories={
                "chat.mention": notify.Category({"inapp": True, "webhook": True}),
                "chat.direct_message": notify.Category({"inapp": True}),
            }
        )
        registry = jobs.WorkerRegistry()
        notifier = notify.Notifier(database, config, channels=[Refusing()], registry=registry)
        await notify.set_address(database, 8, "webhook", "https://hooks.example.com/8")
        mention = await notifier.send(
            "chat.mention", [7, 8], actor=3, payload={"room_name": "ops", "text": "hi"}
        )
        direct = await notifier.send(
            "chat.direct_message",
            [8],
            payload={"sender_name": "Bob", "text": "<b>lunch</b>?"},
            critical=True,
            idempotency_key="chat:12:345",
        )
        await drain(database, "notify", registry=registry)
        return Sent(mention, direct)

    return on_database(url, run)


def delivery_ids(data: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in data]


# -- each command -------------------------------------------------------------------------------


def test_deliveries_lists_newest_first_and_filters(url: str) -> None:
    sent = seed(url)
    every = [d.delivery_id for d in (*sent.mention.deliveries, *sent.direct.deliveries)]
    listed = invoke_json(url, "deliveries")
    assert delivery_ids(listed) == every[::-1]
    stored = {
        d.id: d
        for d in on_database(url, lambda database: notify.list_deliveries(database, 1))
        + on_database(url, lambda database: notify.list_deliveries(database, 2))
    }
    for item in listed:
        found = stored[item["id"]]
        assert (item["user_id"], item["channel"], item["status"], item["category"]) == (
            found.user_id,
            found.channel,
            found.status,
            found.category,
        )
        assert item["updated_at"] == found.updated_at.isoformat()

    def only(*args: str) -> list[tuple[int, str, str]]:
        return [
            (item["user_id"], item["channel"], item["status"])
            for item in invoke_json(url, "deliveries", *args)
        ]

    assert only("--user", "7") == [(7, "webhook", "suppressed"), (7, "inapp", "delivered")]
    assert only("--event", str(sent.direct.event_id)) == [(8, "inapp", "delivered")]
    assert only("--status", "failed") == [(8, "webhook", "failed")]
    assert only("--channel", "webhook") == [(8, "webhook", "failed"), (7, "webhook", "suppressed")]
    assert only("--category", "chat.direct_message", "--user", "8") == [(8, "inapp", "delivered")]
    assert only("--user", "8", "--status", "suppressed") == []
    assert len(only("--limit", "2")) == 2
    table = invoke(url, "deliveries", "--user", "7")
    assert table.exit_code == 0
    assert "no_address" in table.stdout
    assert "chat.mention" in table.stdout
    assert invoke(url, "deliveries", "--user", "99").stdout.strip() == "No deliveries."


def test_delivery_shows_its_status_history(url: str) -> None:
    sent = seed(url)
    failed = next(d for d in sent.mention.deliveries if d.channel == "webhook" and d.user_id == 8)
    data = invoke_json(url, "delivery", str(failed.delivery_id))
    history = on_database(
        url, lambda database: notify.delivery_history(database, failed.delivery_id)
    )
    assert [(step["status"], step["detail"]) for step in data["history"]] == [
        (entry.status, entry.detail) for entry in history
    ]
    assert [step["status"] for step in data["history"]] == ["queued", "failed"]
    assert "400 no such hook" in (data["history"][1]["detail"] or "")
    assert (data["status"], data["address"], data["event_id"]) == (
        "failed",
        "https://hooks.example.com/8",
        sent.mention.event_id,
    )
    human = invoke(url, "delivery", str(failed.delivery_id))
    assert human.exit_code == 0
    for text in ("history", "queued", "failed", "400 no such hook", "hooks.example.com/8"):
        assert text in human.stdout, text


def test_events_and_an_event_with_its_deliveries(url: str) -> None:
    sent = seed(url)
    listed = invoke_json(url, "events")
    assert [(e["id"], e["category"], e["recipients"]) for e in listed] == [
        (sent.direct.event_id, "chat.direct_message", 1),
        (sent.mention.event_id, "chat.mention", 2),
    ]
    assert (listed[0]["idempotency_key"], listed[0]["critical"]) == ("chat:12:345", True)
    assert (listed[1]["idempotency_key"], listed[1]["actor_id"]) == (None, 3)
    assert [e["id"] for e in invoke_json(url, "events", "--category", "chat.mention")] == [
        sent.mention.event_id
    ]
    table = invoke(url, "events")
    assert table.exit_code == 0
    assert "chat:12:345" in table.stdout
    data = invoke_json(url, "event", str(sent.mention.event_id))
    assert data["payload"] == {"room_name": "ops", "text": "hi"}
    assert delivery_ids(data["deliveries"]) == [d.delivery_id for d in sent.mention.deliveries]
    human = invoke(url, "event", str(sent.direct.event_id))
    assert human.exit_code == 0
    assert "<b>lunch</b>?" in human.stdout  # payloads are data, never markup
    assert "delivered" in human.stdout


def test_set_preference_and_preferences(url: str) -> None:
    assert invoke_json(url, "preferences", "7")["preferences"] == []
    assert "chose nothing" in invoke(url, "preferences", "7").stdout
    done = invoke(url, "set-preference", "7", "chat.mention", "all", "off")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "User 7: chat.mention on every channel is off."
    assert invoke_json(url, "set-preference", "7", "chat.mention", "inapp", "on") == {
        "user_id": 7,
        "category": "chat.mention",
        "channel": "inapp",
        "enabled": True,
    }
    chosen = on_database(url, lambda database: notify.get_preferences(database, 7))
    assert chosen == {("chat.mention", None): False, ("chat.mention", "inapp"): True}
    on_database(url, lambda database: notify.set_address(database, 7, "email", "ada@example.com"))
    data = invoke_json(url, "preferences", "7")
    assert data["preferences"] == [
        {"category": "chat.mention", "channel": None, "enabled": False},
        {"category": "chat.mention", "channel": "inapp", "enabled": True},
    ]
    assert data["addresses"] == {"email": "ada@example.com"}
    human = invoke(url, "preferences", "7").stdout
    for text in ("all", "off", "inapp", "on", "ada@example.com"):
        assert text in human, text
    assert on_database(url, lambda database: notify.get_preferences(database, 8)) == {}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["delivery", "event"])
def test_an_id_that_does_not_exist_is_one_line_and_exit_1(url: str, command: str) -> None:
    result = invoke(url, command, "999")
    assert result.exit_code == 1
    assert result.stderr == f"Error: no {command} 999\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deliveries", "--status", "lost"], "--status must be one of queued, suppressed"),
        (["deliveries", "--limit", "0"], "--limit must be 1 or more"),
        (["deliveries", "--event", "0"], "an id is an integer from 1"),
        (["events", "--limit", "10001"], "--limit must be 1 or more"),
        (["delivery", "0"], "an id is an integer from 1"),
        (["set-preference", "7", "chat.mention", "email", "maybe"], "must be on or off"),
        (["set-preference", "7", "", "email", "off"], "category must be a non-empty str"),
    ],
)
def test_invalid_input_is_one_line_exit_2_and_changes_nothing(
    sqlite_url: str, args: list[str], message: str
) -> None:
    result = invoke(sqlite_url, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert on_database(sqlite_url, lambda database: notify.get_preferences(database, 7)) == {}


@pytest.mark.parametrize("bad_id", ["x", "1.5"])
def test_an_id_that_is_not_an_integer_is_a_usage_error(sqlite_url: str, bad_id: str) -> None:
    result = invoke(sqlite_url, "delivery", bad_id)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    result = invoke("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2", "events")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command", ["deliveries", "delivery", "events", "event", "preferences", "set-preference"]
)
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(app, ["notify", command, "--help"])
    assert result.exit_code == 0
    assert "Example: trunkline notify" in result.stdout


def test_the_console_script(tmp_path: Path, sqlite_url: str) -> None:
    seed(sqlite_url)
    done = subprocess.run(
        [sys.executable, "-m", "trunkline", "notify", "events", "--json"],
        env={**os.environ, "TRUNKLINE_DATABASE": sqlite_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [event["category"] for event in json.loads(done.stdout)] == [
        "chat.direct_message",
        "chat.mention",
    ]
