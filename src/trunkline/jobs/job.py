"""A job as it is stored: the row of ``trunkline_jobs``, and the states it moves through.

::

    scheduled --(due: the stager)--> available --(fetched)--> executing
    executing --> completed | retryable | discarded | cancelled | scheduled (snoozed)
    retryable --(due: the stager)--> available
    discarded | cancelled | completed --(retry_job)--> available

A job is fetched in priority order (0 first, 9 last), then by ``scheduled_at``, then by id.
Its ``attempt`` is raised when it is fetched; ``max_attempts`` bounds the attempts that fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from .exceptions import MalformedJob

__all__ = ["COLUMNS", "FINAL_STATES", "STATES", "Job", "State"]

State: TypeAlias = Literal[
    "scheduled", "available", "executing", "retryable", "completed", "discarded", "cancelled"
]

STATES: tuple[State, ...] = (
    "scheduled",
    "available",
    "executing",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
)
"""Every state, in the order a job usually meets them."""

FINAL_STATES: tuple[State, ...] = ("completed", "discarded", "cancelled")
"""The states a job stays in until someone retries it by hand (or the pruner removes it)."""

COLUMNS = (
    "id, state, queue, worker, args, meta, tags, errors, priority, attempt, max_attempts, "
    "inserted_at, scheduled_at, attempted_at, attempted_by, completed_at, discarded_at, "
    "cancelled_at, unique_key"
)
"""The columns every query that reads whole jobs selects, in :meth:`Job.from_row`'s order."""


@dataclass(frozen=True, slots=True)
class Job:
    """One job, as read from the database: what a worker's ``perform`` receives.

    Attributes:
        id: its row id, unique and increasing.
        worker: the name of the worker that runs it.
        queue: the queue it runs in.
        args: its arguments, decoded from JSON.
        state: where it is in its life (see the module documentation).
        priority: 0 (first) to 9 (last).
        attempt: how many times it has been fetched to run (the current attempt while it
            runs; a snooze or a graceful shutdown gives its attempt back).
        max_attempts: how many attempts may fail before it is discarded.
        meta: free JSON metadata.
        tags: labels, for people and dashboards.
        errors: one entry per failed attempt, oldest first: ``attempt``, ``at`` (ISO-8601),
            ``node``, ``type``, ``message``, ``traceback``.
        inserted_at, scheduled_at, attempted_at, completed_at, discarded_at, cancelled_at:
            aware UTC datetimes (``None`` until they happen).
        attempted_by: the node that fetched it last.
        unique_key: set for unique jobs: what duplicates share.
        conflict: true when ``enqueue`` found this job already there (a unique duplicate)
            and returned it instead of inserting a new one.
    """

    id: int
    worker: str
    queue: str
    args: Any
    state: State
    priority: int
    attempt: int
    max_attempts: int
    meta: dict[str, Any]
    tags: list[str]
    errors: list[dict[str, Any]]
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None = None
    attempted_by: str | None = None
    completed_at: datetime | None = None
    discarded_at: datetime | None = None
    cancelled_at: datetime | None = None
    unique_key: str | None = None
    conflict: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: Any, *, conflict: bool = False) -> Job:
        """The job in a row that selected :data:`COLUMNS`.

        Raises:
            MalformedJob: the row's JSON does not decode, or decodes to the wrong shape.
        """
        try:
            args = _decode(row[4])
            meta = _decode(row[5])
            tags = _decode(row[6])
            errors = _decode(row[7])
        except (TypeError, ValueError) as error:
            raise MalformedJob(f"job {row[0]}: its JSON does not decode: {error}") from error
        if type(meta) is not dict or type(tags) is not list or type(errors) is not list:
            raise MalformedJob(
                f"job {row[0]}: meta must be a JSON object and tags and errors JSON arrays, "
                f"not {row[5]!r}, {row[6]!r}, {row[7]!r}"
            )
        return cls(
            row[0],
            row[3],
            row[2],
            args,
            row[1],
            row[8],
            row[9],
            row[10],
            meta,
            tags,
            errors,
            row[11],
            row[12],
            row[13],
            row[14],
            row[15],
            row[16],
            row[17],
            row[18],
            conflict,
        )

    def to_dict(self) -> dict[str, Any]:
        """The job as plain data (datetimes as ISO-8601 text): for JSON and the CLI."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            data[name] = value.isoformat() if isinstance(value, datetime) else value
        return data


def _decode(raw: Any) -> Any:
    # Most jobs have no meta, tags or errors: skip the decoder for the empty literals.
    if raw == "{}":
        return {}
    if raw == "[]":
        return []
    return json.loads(raw)
