"""Looking at jobs and acting on them: by id, by state, queue and worker; retrying and
cancelling by hand; counting.

Each function takes the database (or a transaction). :class:`~trunkline.jobs.Jobs` has the
same as methods on its own database; its ``cancel_job`` also stops at once a job running on
its node.
"""

from __future__ import annotations

from trunkline import otp

from .engine import Connection, engine_for
from .exceptions import InvalidJob
from .job import STATES, Job, State
from .notifier import signal

__all__ = ["cancel_job", "get_job", "list_jobs", "queue_stats", "retry_job"]


async def get_job(conn: Connection, job_id: int) -> Job | None:
    """The job ``job_id``, or ``None`` if there is none.

    Raises:
        MalformedJob: its row cannot be read as a job.
    """
    row = await engine_for(conn).get(conn, job_id)
    return None if row is None else Job.from_row(row)


async def list_jobs(
    conn: Connection,
    *,
    state: State | None = None,
    queue: str | None = None,
    worker: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """The jobs matching every filter given, newest first, at most ``limit``.

    ``list_jobs(database, state="discarded")`` lists the dead letters.

    Raises:
        InvalidJob: an unknown state, or a limit below 1.
        MalformedJob: a row cannot be read as a job.
    """
    if state is not None and state not in STATES:
        raise InvalidJob(f"state must be one of {', '.join(STATES)}, not {state!r}")
    if type(limit) is not int or limit < 1:
        raise InvalidJob(f"limit must be an integer >= 1, not {limit!r}")
    rows = await engine_for(conn).list_jobs(
        conn, state=state, queue=queue, worker=worker, limit=limit
    )
    return [Job.from_row(row) for row in rows]


async def retry_job(conn: Connection, job_id: int) -> Job | None:
    """Run a job again now: a discarded, cancelled, completed, retryable or scheduled job
    becomes available, with at least one attempt left (``max_attempts`` is raised if
    needed; its errors are kept). Its queue is woken.

    Returns:
        The job as it is now: ``available`` if it was retried; unchanged if it was
        available or executing already. ``None`` if there is no such job.
    """
    engine = engine_for(conn)
    row = await engine.retry_job(conn, job_id, otp.current_node().clock.now())
    if row is None:
        row = await engine.get(conn, job_id)
    return None if row is None else Job.from_row(row)


async def cancel_job(conn: Connection, job_id: int) -> Job | None:
    """Cancel a job that has not ended: it will not run (again).

    A job executing on some node is stopped there (its task cancelled) by that node's
    notifier; what it was doing is lost, and its outcome, if it finishes meanwhile, is
    ignored. In a transaction, all this happens when it commits.

    Returns:
        The job as it is now: ``cancelled``, or unchanged if it had ended already
        (completed, discarded, cancelled). ``None`` if there is no such job.
    """
    engine = engine_for(conn)
    row = await engine.cancel_job(conn, job_id, otp.current_node().clock.now())
    if row is None:
        row = await engine.get(conn, job_id)
        return None if row is None else Job.from_row(row)
    await signal(conn, "cancel", id=job_id)
    return Job.from_row(row)


async def queue_stats(conn: Connection) -> dict[str, dict[State, int]]:
    """How many jobs each queue has in each state: ``{"mail": {"available": 3, ...}}``,
    every state present (0 when none), queues in no particular order."""
    return await engine_for(conn).stats(conn)
