"""The heartbeat: a node's row is written when it starts, beats, and is deleted when it stops
gracefully; an outage is waited out without restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from job_backends import Backend, eventually, running

from trunkline import db, jobs, otp
from trunkline.jobs.engine import engine_for


async def _rows(database: db.Database) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await engine_for(database).nodes(database)]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_a_node_writes_its_row_beats_and_deletes_it_on_stop(backend: Backend) -> None:
    registry = jobs.WorkerRegistry()
    async with backend.database() as database:
        async with running(
            database, registry, queues={"default": 3, "mail": 1}, heartbeat_interval_s=5
        ):
            [(node, started_at, first_beat, queues)] = await _rows(database)
            assert node == "test-node"
            assert started_at == first_beat
            assert _json(queues) == {
                "default": {"limit": 3, "paused": False},
                "mail": {"limit": 1, "paused": False},
            }
            await asyncio.sleep(12)  # two beats
            [(_, started_again, beat, _)] = await _rows(database)
            assert started_again == started_at
            assert 10 <= (beat - first_beat).total_seconds() < 15
        assert await _rows(database) == []


async def test_a_crashed_heartbeat_leaves_the_row_and_beats_again(backend: Backend) -> None:
    async with backend.database() as database, running(database, jobs.WorkerRegistry()) as node:
        heartbeat = otp.resolve(otp.Via(node.names, "heartbeat"))
        assert heartbeat is not None
        otp.exit(heartbeat, otp.KILL)  # not a graceful stop: the queues still run
        await eventually(
            lambda: _restarted(node, heartbeat), "the heartbeat restarted", timeout_s=5
        )
        assert [row[0] for row in await _rows(database)] == ["test-node"]


async def _restarted(node: jobs.Jobs, old: otp.Pid) -> bool:
    pid = otp.resolve(otp.Via(node.names, "heartbeat"))
    return pid is not None and pid != old


@contextlib.asynccontextmanager
async def _nodes_table_away(backend: Backend, database: db.Database) -> AsyncIterator[None]:
    """On SQLite the outage takes only the jobs table away: take the nodes' table too."""
    if backend.name != "sqlite":
        yield
        return
    await database.execute(f"ALTER TABLE {jobs.NODES_TABLE} RENAME TO nodes_away")
    try:
        yield
    finally:
        await database.execute(f"ALTER TABLE nodes_away RENAME TO {jobs.NODES_TABLE}")


async def test_an_outage_is_waited_out_without_restarts(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        backend.broken_database() as (database, outage),
        running(database, jobs.WorkerRegistry(), heartbeat_interval_s=1) as node,
    ):
        pids = {role: otp.resolve(otp.Via(node.names, role)) for role in ("heartbeat", "lifeline")}
        async with _nodes_table_away(backend, database), outage:
            await asyncio.sleep(10)
        clock = otp.current_node().clock

        async def beat_again() -> bool:
            rows = await _rows(database)
            return bool(rows) and (clock.now() - rows[0][2]).total_seconds() < 2

        await asyncio.sleep(3)
        await eventually(beat_again, "it beats again")
        for role, pid in pids.items():
            assert otp.resolve(otp.Via(node.names, role)) == pid, role
        failures = [
            r for r in caplog.records if "heartbeat" in r.getMessage() and "trying again" in r.msg
        ]
        assert len(failures) >= 3
        assert all(r.levelno == logging.WARNING for r in failures)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s must be seconds > 0"),
        ({"rescue_after_s": -1}, "rescue_after_s must be seconds > 0"),
        ({"heartbeat_interval_s": 10, "rescue_after_s": 10}, "must be more than heartbeat"),
        ({"prune_after_s": float("nan")}, "prune_after_s must be seconds > 0"),
        ({"prune_interval_s": "60"}, "prune_interval_s must be seconds > 0"),
        ({"metrics_interval_s": True}, "metrics_interval_s must be seconds > 0"),
    ],
)
async def test_invalid_options_are_refused(
    backend: Backend, options: dict[str, Any], message: str
) -> None:
    async with backend.database() as database:
        with pytest.raises(ValueError, match=message):
            jobs.Jobs(database, registry=jobs.WorkerRegistry(), **options)
