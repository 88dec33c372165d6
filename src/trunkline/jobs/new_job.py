"""A job to enqueue: what ``enqueue`` takes, checked and encoded when it is made.

Everything that can be wrong with a job is found here, before anything is written: arguments
that are not JSON, options out of range. :meth:`Worker.new <trunkline.jobs.Worker.new>` makes
one with the worker's defaults; :func:`new_job` makes one for a worker known only by name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .exceptions import InvalidJob
from .unique import Unique

__all__ = ["MAX_ATTEMPTS", "MAX_DELAY_S", "NewJob", "check_name", "encode_json", "new_job"]

MAX_ATTEMPTS = 20
"""The default ``max_attempts``."""
MAX_DELAY_S = 100 * 365.25 * 86_400
"""The furthest ahead ``in_s`` may schedule a job: 100 years."""

_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue, with its options; see :func:`new_job` for what each one means.

    Raises:
        InvalidJob: the arguments or the meta are not JSON, or an option is invalid; the
            message names it.
    """

    worker: str
    args: Any = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_attempts: int = MAX_ATTEMPTS
    scheduled_at: datetime | None = None
    in_s: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    unique: Unique | None = None
    # Encoded once, here: enqueue only copies them into statements.
    args_json: str = field(init=False, repr=False, compare=False)
    meta_json: str = field(init=False, repr=False, compare=False)
    tags_json: str = field(init=False, repr=False, compare=False)
    unique_key: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name("worker", self.worker)
        check_name("queue", self.queue)
        check_priority(self.priority)
        check_max_attempts(self.max_attempts)
        if self.scheduled_at is not None:
            if not isinstance(self.scheduled_at, datetime) or self.scheduled_at.tzinfo is None:
                raise InvalidJob(
                    f"scheduled_at must be a timezone-aware datetime, not {self.scheduled_at!r}"
                )
            if self.in_s is not None:
                raise InvalidJob("give scheduled_at or in_s, not both")
            try:
                self.scheduled_at.astimezone(UTC)
            except OverflowError:
                raise InvalidJob(f"scheduled_at is out of range: {self.scheduled_at}") from None
        if self.in_s is not None and (
            isinstance(self.in_s, bool)
            or not isinstance(self.in_s, int | float)
            or not math.isfinite(self.in_s)
            or self.in_s < 0
            or self.in_s > MAX_DELAY_S
        ):
            raise InvalidJob(
                f"in_s must be seconds from 0 to {MAX_DELAY_S:.0f} (100 years), not {self.in_s!r}"
            )
        if not isinstance(self.meta, dict):
            raise InvalidJob(f"meta must be a dict (a JSON object), not {self.meta!r}")
        tags = check_tags(self.tags)
        if self.unique is not None and not isinstance(self.unique, Unique):
            raise InvalidJob(f"unique must be a Unique(...) or None, not {self.unique!r}")
        set_ = object.__setattr__
        set_(self, "tags", tags)
        set_(self, "args_json", encode_json(self.args, "args"))
        set_(self, "meta_json", encode_json(self.meta, "meta") if self.meta else "{}")
        set_(self, "tags_json", _ENCODE(list(tags)) if tags else "[]")
        key = None if self.unique is None else self.unique.key(self.worker, self.queue, self.args)
        set_(self, "unique_key", key)


def new_job(
    worker: str,
    args: Any = None,
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = MAX_ATTEMPTS,
    scheduled_at: datetime | None = None,
    in_s: float | None = None,
    meta: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    unique: Unique | None = None,
) -> NewJob:
    """A job for the worker registered as ``worker``, with these options.

    Args:
        worker: the worker's name (it need not be registered on this node).
        args: the arguments: JSON (dicts with string keys, lists, strings, numbers, booleans,
            ``None``); ``{}`` when omitted.
        queue: the queue it runs in.
        priority: 0 (runs first) to 9 (runs last).
        max_attempts: attempts that may fail before it is discarded (at least 1).
        scheduled_at: run it at this time (timezone-aware), not before.
        in_s: run it this many seconds from now.
        meta: free JSON metadata (a dict).
        tags: labels (strings).
        unique: how it is unique, or ``None``.

    Raises:
        InvalidJob: the arguments or the meta are not JSON, or an option is invalid.
    """
    return NewJob(
        worker,
        {} if args is None else args,
        queue,
        priority,
        max_attempts,
        scheduled_at,
        in_s,
        {} if meta is None else meta,
        tags,
        unique,
    )


def check_name(option: str, value: object) -> str:
    """``value`` if it is a usable worker or queue name, else :class:`InvalidJob`."""
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME:
        raise InvalidJob(f"{option} must be a string of 1 to {_MAX_NAME} characters, not {value!r}")
    return value


def check_priority(value: object) -> int:
    if type(value) is not int or not 0 <= value <= 9:
        raise InvalidJob(f"priority must be an integer from 0 (first) to 9 (last), not {value!r}")
    return value


def check_max_attempts(value: object) -> int:
    if type(value) is not int or value < 1:
        raise InvalidJob(f"max_attempts must be an integer >= 1, not {value!r}")
    return value


def check_tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidJob(f"tags must be a list of strings, not {value!r}")
    if not all(isinstance(tag, str) for tag in value):
        raise InvalidJob(f"tags must be a list of strings, not {value!r}")
    return tuple(value)


def encode_json(value: Any, what: str) -> str:
    """``value`` as compact JSON text, if it is JSON and will read back as it is.

    Raises:
        InvalidJob: something in ``value`` is not JSON - or would not come back the same:
            a tuple (it would come back a list), a dict key that is not a string (it would
            come back a string), ``NaN`` or an infinity. The message says where.
    """
    if not _is_json(value):
        _check(value, what)  # finds where, and raises
    return _ENCODE(value)


# One encoder for every job: json.dumps makes one per call when given separators.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _is_json(value: Any) -> bool:
    # The common case, without building the path of every item: _check does on failure.
    if value is None or isinstance(value, str | int):  # bool is an int
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not _is_json(item):
                return False
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    return False


def _check(value: Any, path: str) -> None:
    # isinstance, not type(): an IntEnum or a str subclass encodes as its plain value.
    if value is None or isinstance(value, str | int):  # bool is an int
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJob(f"{path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJob(
                    f"{path} has the key {key!r}: JSON object keys are strings "
                    f"(it would come back as {str(key)!r})"
                )
            _check(item, f"{path}[{key!r}]")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    hint = " (use a list)" if isinstance(value, tuple) else ""
    raise InvalidJob(
        f"{path} is a {type(value).__qualname__}: job arguments must be JSON - dicts with "
        f"string keys, lists, strings, numbers, booleans and None{hint}"
    )
