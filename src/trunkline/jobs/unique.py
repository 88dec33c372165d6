"""Unique jobs: at most one job with the same worker, queue and arguments (or a chosen part of
them) in chosen states, over a period.

A unique job's *unique key* is a hash of the fields it is unique by; ``enqueue`` looks for a
job with that key, in one of the states, inserted within the period, and returns it (flagged
``conflict=True``) instead of inserting a duplicate. The look-up and the insert are one
critical section: on PostgreSQL under a transaction-scoped advisory lock on the key, on SQLite
under the one writer. See ``docs/jobs.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .exceptions import InvalidJob
from .job import STATES, State

__all__ = ["DEFAULT_UNIQUE_STATES", "Field", "Unique"]

Field: TypeAlias = Literal["worker", "queue", "args"]

DEFAULT_UNIQUE_STATES: tuple[State, ...] = (
    "scheduled",
    "available",
    "executing",
    "retryable",
    "completed",
)
"""Every state but ``discarded`` and ``cancelled``: a job that gave up does not block a new one."""

_FIELDS: tuple[Field, ...] = ("worker", "queue", "args")


@dataclass(frozen=True, slots=True)
class Unique:
    """How a job is unique.

    Attributes:
        period_s: a job inserted more than this many seconds ago does not count (default 60);
            ``None``: however long ago.
        fields: what two jobs must share to be duplicates: some of ``"worker"``,
            ``"queue"``, ``"args"`` (default all three).
        keys: compare only these keys of the arguments (which must then be a JSON object);
            ``None`` (default): the whole arguments.
        states: the states in which an existing job counts (default every state but
            ``discarded`` and ``cancelled``).

    Raises:
        InvalidJob: an option is invalid.

    Example::

        @worker(unique=Unique(period_s=300, keys=("user_id",)))
        async def send_digest(job): ...
    """

    period_s: float | None = 60.0
    fields: Sequence[Field] = _FIELDS
    keys: Sequence[str] | None = None
    states: Sequence[State] = DEFAULT_UNIQUE_STATES

    def __post_init__(self) -> None:
        period = self.period_s
        if period is not None and (
            isinstance(period, bool)
            or not isinstance(period, int | float)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise InvalidJob(f"unique period_s must be None or seconds > 0, not {period!r}")
        fields = _names("fields", self.fields)
        if not fields or not set(fields) <= set(_FIELDS):
            raise InvalidJob(
                f"unique fields must be some of 'worker', 'queue', 'args', not {self.fields!r}"
            )
        object.__setattr__(self, "fields", tuple(sorted(set(fields), key=_FIELDS.index)))
        if self.keys is not None:
            keys = _names("keys", self.keys)
            if "args" not in self.fields:
                raise InvalidJob("unique keys select arguments: fields must include 'args'")
            object.__setattr__(self, "keys", tuple(sorted(set(keys))))
        states = _names("states", self.states)
        if not states or not set(states) <= set(STATES):
            raise InvalidJob(f"unique states must be some of {', '.join(STATES)}, not {states!r}")
        object.__setattr__(self, "states", tuple(s for s in STATES if s in states))

    def key(self, worker: str, queue: str, args: Any) -> str:
        """The unique key of a job of ``worker`` in ``queue`` with ``args``.

        Raises:
            InvalidJob: ``keys`` are set and ``args`` is not a JSON object.
        """
        values: dict[str, Any] = {}
        if "worker" in self.fields:
            values["worker"] = worker
        if "queue" in self.fields:
            values["queue"] = queue
        if "args" in self.fields:
            if self.keys is None:
                values["args"] = args
            elif type(args) is dict:
                values["args"] = {key: args[key] for key in self.keys if key in args}
            else:
                raise InvalidJob(
                    f"unique keys {list(self.keys)} need arguments that are a JSON object, "
                    f"not {args!r}"
                )
            values["keys"] = self.keys
        text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _names(option: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidJob(f"unique {option} must be a list of strings, not {value!r}")
    if not all(isinstance(item, str) for item in value):
        raise InvalidJob(f"unique {option} must be a list of strings, not {value!r}")
    return tuple(value)
