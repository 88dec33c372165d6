"""One queue on one node: its settings and state (:class:`Queue`), what it reports
(:class:`QueueInfo`), and its limits. Its processes are in ``queue_supervisor.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trunkline import otp

from .engine import Engine

if TYPE_CHECKING:
    from trunkline import db

    from .jobs import Jobs
    from .registry import WorkerRegistry

__all__ = ["MAX_LIMIT", "Queue", "QueueInfo", "check_limit"]

MAX_LIMIT = 10_000
"""The most jobs one queue runs at once on one node."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue on this node, now.

    Attributes:
        name: the queue.
        node: this node.
        limit: the most jobs it runs at once.
        running: the jobs it runs now.
        paused: whether it has stopped fetching jobs.
        held: the jobs it took ahead, to start as slots come free.
    """

    name: str
    node: str
    limit: int
    running: int
    paused: bool
    held: int = 0


class Queue:
    """A queue's settings and shared state on this node: what its processes read.

    ``limit`` and ``paused`` live here rather than in the producer alone, so that a producer
    restarted after a crash keeps the ones set at run time.
    """

    __slots__ = ("held", "jobs", "limit", "name", "paused", "producer")

    def __init__(self, jobs: Jobs, name: str, limit: int) -> None:
        self.jobs = jobs
        self.name = name
        self.limit = check_limit(limit, name)
        self.paused = False
        self.producer: otp.Pid | None = None  # set by the running producer
        self.held = 0  # jobs the executor holds for a free slot (set by the executor)

    @property
    def database(self) -> db.Database:
        return self.jobs.database

    @property
    def engine(self) -> Engine:
        return self.jobs.engine

    @property
    def workers(self) -> WorkerRegistry:
        return self.jobs.registry

    @property
    def node(self) -> str:
        return self.jobs.node

    def name_of(self, role: str) -> otp.Via:
        """The registered name of this queue's ``role`` process (``"producer"``...)."""
        return otp.Via(self.jobs.names, (role, self.name))

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} limit={self.limit}{' paused' if self.paused else ''}>"


def check_limit(limit: Any, queue: str) -> int:
    """``limit`` if it is a valid concurrency limit for ``queue``.

    Raises:
        ValueError: not an integer from 1 to :data:`MAX_LIMIT`.
    """
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(
            f"queue {queue!r}: the limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}"
        )
    return limit
