"""What every supervisor does with a child: its spec, starting it, restarting it, shutting it
down - and the part of a supervisor process that does not depend on its kind.

Shared by :mod:`~trunkline.otp.supervisor` and :mod:`~trunkline.otp.dynamic_supervisor`. The
public types (:class:`ChildSpec`, :class:`ChildInfo`, :class:`ChildCounts`) are re-exported by
``supervisor``; the rest is the supervisors' own machinery.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from .exceptions import AlreadyStarted, ProcessExit, StartError, StartIgnored, SupervisorError
from .gen_server import GenServer, Stop
from .node import current_node
from .process import (
    KILL,
    KILLED,
    SHUTDOWN,
    Down,
    Exit,
    Pid,
    Ref,
    Via,
    exit,
    is_normal_exit,
    monitor,
    receive,
    self,
    unlink,
)

__all__ = ["ChildCounts", "ChildInfo", "ChildSpec", "ChildType", "Restart", "Shutdown"]

log = logging.getLogger("trunkline.otp")

Restart: TypeAlias = Literal["permanent", "transient", "temporary"]
"""``permanent``: always restarted; ``transient``: restarted only after an abnormal exit (see
:func:`~trunkline.otp.is_normal_exit`); ``temporary``: never restarted, forgotten when it ends."""

ChildType: TypeAlias = Literal["worker", "supervisor"]

Shutdown: TypeAlias = "float | Literal['brutal_kill', 'infinity']"
"""Seconds to wait after the ``"shutdown"`` exit signal before killing, ``"brutal_kill"`` to kill
at once, or ``"infinity"`` to wait as long as it takes (for child supervisors)."""

StartFunction: TypeAlias = Callable[[], Awaitable["Pid | None"]]

_RESTARTS = ("permanent", "transient", "temporary")
_TYPES = ("worker", "supervisor")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Attributes:
        id: names the child within its supervisor (any hashable; unique per supervisor).
        start: a zero-argument async callable that starts the child *linked to the caller* and
            returns its pid, e.g. ``functools.partial(Worker.start_link, arg)``. Returning
            ``None`` or raising :class:`~trunkline.otp.StartIgnored` means "ignore": the child
            is recorded as not running. Anything else it raises is a start failure.
        restart: ``"permanent"`` (default), ``"transient"`` or ``"temporary"``.
        shutdown: seconds to wait after the ``"shutdown"`` exit signal before killing the
            child, ``"brutal_kill"`` or ``"infinity"``. Left as ``None`` it becomes 5.0 for a
            worker and ``"infinity"`` for a supervisor.
        type: ``"worker"`` (default) or ``"supervisor"``.

    Raises:
        TypeError, ValueError: an option is invalid; the message names the child and option.

    :func:`~trunkline.otp.child_spec` builds one for a GenServer or Supervisor class.
    """

    id: Hashable
    start: StartFunction
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"

    def __post_init__(self) -> None:
        try:
            hash(self.id)
        except TypeError:
            raise TypeError(f"child id must be hashable, not {self.id!r}") from None
        if not callable(self.start):
            raise TypeError(
                f"child {self.id!r}: start must be an async callable, not {self.start!r}"
            )
        if self.restart not in _RESTARTS:
            raise ValueError(
                f"child {self.id!r}: restart must be 'permanent', 'transient' or 'temporary', "
                f"not {self.restart!r}"
            )
        if self.type not in _TYPES:
            raise ValueError(
                f"child {self.id!r}: type must be 'worker' or 'supervisor', not {self.type!r}"
            )
        shutdown = self.shutdown
        if shutdown is None:
            object.__setattr__(self, "shutdown", "infinity" if self.type == "supervisor" else 5.0)
        elif shutdown not in ("brutal_kill", "infinity") and not _is_seconds(shutdown):
            raise ValueError(
                f"child {self.id!r}: shutdown must be seconds >= 0, 'brutal_kill' or "
                f"'infinity', not {shutdown!r}"
            )


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as ``which_children`` reports it.

    ``pid`` is ``None`` when the child is not running; ``restarting`` is true while its
    supervisor is retrying a failed restart (OTP shows such a child as ``restarting``).
    """

    id: Hashable
    pid: Pid | None
    type: ChildType
    restart: Restart
    restarting: bool = False


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children``: ``specs`` children in all; ``active`` of them running; how many are
    ``supervisors`` and ``workers``, running or not."""

    specs: int
    active: int
    supervisors: int
    workers: int


def check_intensity(max_restarts: int, max_seconds: float) -> None:
    """Validate a supervisor's restart intensity options."""
    if type(max_restarts) is not int or max_restarts < 0:
        raise ValueError(f"max_restarts must be an integer >= 0, not {max_restarts!r}")
    if type(max_seconds) not in (int, float) or not 0 < max_seconds < math.inf:
        raise ValueError(f"max_seconds must be a number of seconds > 0, not {max_seconds!r}")


class Intensity:
    """Counts restarts: more than ``max_restarts`` within ``max_seconds`` is too many.

    A restart at time ``t`` counts those at ``t - max_seconds`` or later, itself included, as
    OTP does. Kept as a deque of times, oldest first: O(1) amortised per restart.
    """

    __slots__ = ("_clock", "_times", "max_restarts", "max_seconds")

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._clock = current_node().clock
        self._times: deque[float] = deque()

    def add_restart(self) -> bool:
        """Record a restart now; ``False`` when that makes too many."""
        now = self._clock.monotonic()
        times = self._times
        threshold = now - self.max_seconds
        while times and times[0] < threshold:
            times.popleft()
        times.append(now)
        return len(times) <= self.max_restarts


# -- the supervisor process ---------------------------------------------------------------------


def spec_error(spec: Any) -> TypeError | None:
    """The error for a ``start_child`` given something other than a :class:`ChildSpec`."""
    if isinstance(spec, ChildSpec):
        return None
    return TypeError(f"start_child needs a ChildSpec (see child_spec), not {spec!r}")


def id_error(child_id: Any) -> TypeError | None:
    """The error for a child id that cannot be one; checked by the client functions, so that
    the caller gets it, and again by the supervisor, which must not crash on it."""
    try:
        hash(child_id)
    except Exception:  # a broken __hash__ may raise anything; none of it may kill us
        # The type, not the repr: a value this broken may fail to print too.
        return TypeError(f"child id must be hashable, not a {type(child_id).__qualname__}")
    return None


@dataclass(frozen=True, slots=True)
class TryAgain:
    """Sent by a supervisor to itself when restarting ``child`` failed (for ``reason``): it
    retries after the messages already in its mailbox, such as a shutdown request from its
    parent. ``child`` is the child's key in that supervisor: its id, or its old pid in a
    dynamic supervisor."""

    child: Hashable
    reason: Any


class SupervisorBehaviour:
    """What :class:`~trunkline.otp.Supervisor` and
    :class:`~trunkline.otp.DynamicSupervisor` instances share: they are the behaviour that
    introspection and crash reports find on a supervisor's pid."""

    otp_kind: ClassVar[str] = "supervisor"  # what introspection calls this behaviour
    _server: SupervisorServer | None = None

    def describe_message(self, message: Any) -> str:
        """How a crash report shows a message the supervisor received: a request as
        ``call 'which_children'``, not the runtime's internal tuple."""
        server = self._server
        return repr(message) if server is None else server.describe_message(message)


class SupervisorServer(GenServer):
    """The process behind a supervisor of either kind; a subclass keeps the children.

    It traps exits, shows its :class:`SupervisorBehaviour` to introspection, applies OTP's
    restart rule, and routes each message: a child's exit to :meth:`child_exited`, a failed
    restart to :meth:`try_again`; anything else is logged and dropped.
    """

    trap_exit = True

    behaviour: SupervisorBehaviour
    intensity: Intensity

    def adopt(self, behaviour: SupervisorBehaviour) -> None:
        """Make ``behaviour`` what introspection and crash reports see of this process."""
        self.behaviour = behaviour
        behaviour._server = self
        self.pid._behaviour = behaviour

    @property
    def label(self) -> str:
        """How reports name this supervisor."""
        return describe(self.pid, type(self.behaviour).__qualname__)

    def restarts(self, spec: ChildSpec, pid: Pid, reason: Any) -> bool:
        """Whether a child that ended with ``reason`` is restarted, reporting it as OTP does.

        ``permanent``: always; ``transient``: after an abnormal exit; ``temporary``: never.
        An abnormal exit is reported either way; a normal one only when it is restarted.
        """
        restart = spec.restart
        again = restart == "permanent" or (restart == "transient" and not is_normal_exit(reason))
        if again or not is_normal_exit(reason):
            report(self.label, "child_terminated", spec, pid, reason)
        return again

    def bad_request(self, request: Any) -> SupervisorError:
        return SupervisorError("bad_request", f"{self.label} does not understand {request!r}")

    def handle_cast(self, request: Any) -> None:
        log.error("%s received an unexpected cast: %r", self.label, request)

    async def handle_info(self, message: Any) -> Stop | None:
        if type(message) is Exit:
            return await self.child_exited(message.pid, message.reason)
        if type(message) is TryAgain:
            return await self.try_again(message.child, message.reason)
        log.error("%s received an unexpected message: %r", self.label, message)
        return None

    async def child_exited(self, pid: Pid, reason: Any) -> Stop | None:
        """A linked process ended: restart it, forget it, or ignore it (not a child)."""
        raise NotImplementedError

    async def try_again(self, child: Hashable, reason: Any) -> Stop | None:
        """Retry the restart of ``child`` that failed with ``reason``, if still wanted."""
        raise NotImplementedError


async def start_supervisor(
    server: type[SupervisorServer],
    what: str,
    arg: Any,
    name: Hashable | Via | None,
    link: bool,
) -> Pid:
    """Start ``server`` with ``arg``, its errors naming the supervisor class ``what``."""
    try:
        # No timeout: a supervisor's init starts its children, which takes what it takes.
        return await server.start(arg, name=name, link=link, timeout=None)
    except AlreadyStarted as e:
        raise AlreadyStarted(what, e.name, e.pid) from None
    except StartIgnored:
        raise StartIgnored(what) from None
    except StartError as e:
        raise StartError(what, e.reason) from None


# -- starting ----------------------------------------------------------------------------------


async def start_process(spec: ChildSpec) -> Pid | None:
    """Run ``spec.start``: the child's pid, or ``None`` when it ignored the start.

    Raises:
        StartError: the start failed; ``reason`` is why (for a GenServer whose ``init``
            raised, the exception), and ``what`` names the child. A ``CancelledError`` is
            such a failure too, unless this task is being cancelled.
        AlreadyStarted: the child's name is taken, as raised by its start function.
    """
    try:
        pid = await spec.start()
    except StartIgnored:
        return None
    except AlreadyStarted:
        raise
    except StartError as e:
        raise StartError(f"child {spec.id!r}", e.reason) from None
    except ProcessExit as e:  # the start function exited the caller: OTP catches that too
        raise StartError(f"child {spec.id!r}", e.reason) from None
    except Exception as e:
        raise StartError(f"child {spec.id!r}", e) from e
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # this supervisor is being killed: let it go
        # No one cancelled us: the start function awaited a future that someone else
        # cancelled (a pool dropping a connection attempt). A failed start, not our death.
        raise StartError(f"child {spec.id!r}", e) from e
    if pid is None or type(pid) is Pid:
        return pid
    raise StartError(f"child {spec.id!r}", TypeError(f"start returned {pid!r}, not a Pid or None"))


# -- shutting down -----------------------------------------------------------------------------


async def shut_down(pid: Pid, spec: ChildSpec, supervisor: str) -> None:
    """Stop one child as OTP does, and return when it is dead and unlinked.

    Monitor it, send ``"shutdown"`` (or kill, for ``brutal_kill``), wait for its ``Down`` up
    to its shutdown time, then kill. Only that ``Down`` is taken from the mailbox, so exits
    of other children wait for their turn. The link stays until the child is dead: were this
    supervisor killed meanwhile, the child would go with it.
    """
    me = self()
    if not pid._alive:
        # It died before we got to it: take its exit signal out of our mailbox.
        _check_shutdown(supervisor, spec, pid, _flush_exit(me, pid, pid._reason))
        return
    ref = monitor(pid)
    shutdown = spec.shutdown
    if shutdown == "brutal_kill":
        exit(pid, KILL)
        down = await receive(_is_down(ref))
    else:
        exit(pid, SHUTDOWN)
        if shutdown == "infinity":
            down = await receive(_is_down(ref))
        else:
            try:
                down = await receive(_is_down(ref), timeout=shutdown)
            except TimeoutError:
                exit(pid, KILL)
                down = await receive(_is_down(ref))
    unlink(pid)
    _check_shutdown(supervisor, spec, pid, _flush_exit(me, pid, down.reason))


async def shut_down_all(children: Iterable[tuple[Pid, ChildSpec]], supervisor: str) -> None:
    """Stop many children at once, for a supervisor that is terminating.

    Exit signals go out in the order given; then the children stop concurrently, each
    killed when its own shutdown time is up. Every other message is dropped: the supervisor
    is going away, so nothing in its mailbox would be read anyway, and reading it in order
    keeps this linear in the number of children.
    """
    me = self()
    clock = me._node.clock
    pending: dict[Ref, tuple[Pid, ChildSpec]] = {}
    timed: dict[float, list[Ref]] = {}
    for pid, spec in children:
        if not pid._alive:
            # Already dead (many may be, after a common failure): its exit signal waits in
            # the mailbox, but scanning for each would be quadratic; the runtime kept the reason.
            _check_shutdown(supervisor, spec, pid, pid._reason)
            continue
        ref = monitor(pid)
        pending[ref] = (pid, spec)
        shutdown = spec.shutdown
        if shutdown == "brutal_kill":
            exit(pid, KILL)
        else:
            exit(pid, SHUTDOWN)
            if isinstance(shutdown, int | float):
                timed.setdefault(shutdown, []).append(ref)
    started = clock.monotonic()
    deadlines = sorted(timed.items(), reverse=True)  # soonest last, to pop
    while pending:
        timeout = None
        if deadlines:
            timeout = max(0.0, started + deadlines[-1][0] - clock.monotonic())
        try:
            message = await receive(timeout=timeout)
        except TimeoutError:
            for ref in deadlines.pop()[1]:
                entry = pending.get(ref)
                if entry is not None:
                    exit(entry[0], KILL)
            continue
        if type(message) is Down:
            entry = pending.pop(message.ref, None)
            if entry is not None:
                unlink(entry[0])
                _check_shutdown(supervisor, entry[1], entry[0], message.reason)


def _is_down(ref: Ref) -> Callable[[Any], bool]:
    return lambda message: type(message) is Down and message.ref is ref


def _flush_exit(me: Pid, pid: Pid, default: Any) -> Any:
    """Take ``pid``'s exit signal out of our mailbox; its reason, or ``default`` if none."""
    mailbox = me._mailbox
    if mailbox:
        for i, message in enumerate(mailbox):
            if type(message) is Exit and message.pid is pid:
                del mailbox[i]
                return message.reason
    return default


def _check_shutdown(supervisor: str, spec: ChildSpec, pid: Pid, reason: Any) -> None:
    """Report a child that did not end the way its shutdown asked (OTP's ``shutdown_error``)."""
    if type(reason) is str and reason == (KILLED if spec.shutdown == "brutal_kill" else SHUTDOWN):
        return
    if spec.restart != "permanent" and is_normal_exit(reason):
        return
    report(supervisor, "shutdown_error", spec, pid, reason)


# -- reports -----------------------------------------------------------------------------------


def report(supervisor: str, context: str, spec: ChildSpec, pid: Pid | None, reason: Any) -> None:
    """Log one of OTP's supervisor reports, with the context in ``extra``.

    ``context`` is ``start_error``, ``child_terminated``, ``shutdown_error``, or ``shutdown``
    (too many restarts: the supervisor is giving up; ``reason`` is why the child was to be
    restarted: its exit reason, or the failure of the previous restart).
    """
    args: tuple[Any, ...]
    # A class used as the id (child_spec's default) reads better as its name.
    child = spec.id.__qualname__ if isinstance(spec.id, type) else repr(spec.id)
    if context == "start_error":
        message, args = "supervisor %s: child %s failed to start: %r", (child, reason)
    elif context == "shutdown":
        message, args = (
            "supervisor %s: too many restarts, shutting down (last: child %s, after %r)",
            (child, reason),
        )
    elif context == "shutdown_error":
        message, args = "supervisor %s: child %s (%r) shut down with %r", (child, pid, reason)
    else:
        message, args = "supervisor %s: child %s (%r) terminated: %r", (child, pid, reason)
    log.error(
        message,
        supervisor,
        *args,
        extra={
            "supervisor": supervisor,
            "error_context": context,
            "child_id": spec.id,
            "child_pid": repr(pid),
            "reason": reason,
        },
    )


def describe(pid: Pid, kind: str) -> str:
    """How reports name a supervisor: its kind, pid and registered name."""
    name = pid._name
    return f"{kind} {pid!r}" + (f" ({name!r})" if name is not None else "")
