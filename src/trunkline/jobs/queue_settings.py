"""Queue settings that every node follows, kept in the database: paused or not, and the limit.

A pause, resume or scale meant for every node (``Jobs.pause`` and friends without
``local_only``, or :func:`pause_queue`, :func:`resume_queue`, :func:`scale_queue` from any
process: a command line, a script) writes the queue's row of ``trunkline_job_queues`` and
signals every node. The signal is instant where notifications cross processes
(PostgreSQL); the row is what makes the change last and reach every node anyway: a queue's
producer reads it when it starts (a paused queue stays paused across restarts, a limit set
for every node applies) and on each poll (``poll_interval_s``), so a change made by another
process reaches every node within a poll, on SQLite too.

A producer applies what *changed* in the row since its node last read it, so a change made
with ``local_only`` (kept in memory only) lasts until the row next changes.

A queue that no node runs yet may be given settings: they apply when one starts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trunkline import db, otp

from .engine import SIGNAL_CHANNEL, Connection, engine_for
from .new_job import check_name
from .queue import check_limit

# `command` is for Jobs (it names the sending node), not for users: not in __all__.
__all__ = ["QueueSettings", "pause_queue", "queue_settings", "resume_queue", "scale_queue"]


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's settings for every node, as stored.

    Attributes:
        queue: the queue.
        paused: whether every node has stopped fetching its jobs.
        limit: the most jobs it runs at once on each node, or ``None``: each node's own.
        updated_at: when they last changed.
    """

    queue: str
    paused: bool
    limit: int | None
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: db.Row) -> QueueSettings:
        queue, paused, limit, updated_at = row
        return cls(queue, bool(paused), limit, updated_at)


async def pause_queue(conn: Connection, queue: str) -> QueueSettings:
    """Stop every node fetching jobs of ``queue`` (running ones go on), now and after
    restarts, until :func:`resume_queue`. Needs no running node: any process may call it.

    In a transaction, it takes effect when the transaction commits.

    Returns:
        The queue's settings as they are now.

    Raises:
        InvalidJob: ``queue`` is not a valid queue name.
    """
    return await command(conn, queue, "pause")


async def resume_queue(conn: Connection, queue: str) -> QueueSettings:
    """Let every node fetch jobs of ``queue`` again; see :func:`pause_queue`."""
    return await command(conn, queue, "resume")


async def scale_queue(conn: Connection, queue: str, limit: int) -> QueueSettings:
    """Run at most ``limit`` jobs of ``queue`` at once on each node, now and after restarts
    (it overrides the limit each node was started with). Lowering it stops no running job:
    fewer start. See :func:`pause_queue`.

    Raises:
        InvalidJob: ``queue`` is not a valid queue name.
        ValueError: ``limit`` is not an integer from 1 to 10,000.
    """
    return await command(conn, queue, "scale", limit=limit)


async def queue_settings(conn: Connection) -> dict[str, QueueSettings]:
    """The settings stored for every node, by queue name; a queue never paused, resumed or
    scaled for every node has none."""
    rows = await engine_for(conn).all_queue_settings(conn)
    return {row[0]: QueueSettings.from_row(row) for row in rows}


async def command(
    conn: Connection,
    queue: str,
    action: str,
    *,
    limit: int | None = None,
    node: str | None = None,
) -> QueueSettings:
    """Store ``action`` (``"pause"``, ``"resume"`` or ``"scale"`` to ``limit``) for every
    node and signal them, in one transaction; ``node``, when given, is the node that sends
    it and has applied it already (its notifier ignores the signal)."""
    check_name("queue", queue)
    if action == "scale":
        check_limit(limit, queue)
    elif action not in ("pause", "resume"):
        raise ValueError(f"unknown queue action {action!r}")
    engine = engine_for(conn)
    now = otp.current_node().clock.now()
    fields: dict[str, Any] = {"action": action, "queue": queue}
    if node is not None:
        fields["node"] = node
    async with conn.transaction() as tx:
        if action == "scale":
            assert limit is not None
            fields["limit"] = limit
            row = await engine.set_limit(tx, queue, limit, now)
        else:
            row = await engine.set_paused(tx, queue, action == "pause", now)
        # The notifier's signal (notifier.signal), written here as the notifier imports the
        # producer, which reads these settings.
        await tx.notify(SIGNAL_CHANNEL, json.dumps(fields))
    return QueueSettings.from_row(row)
