"""Supervisor: a process that starts children, watches them and restarts them, as in OTP.

A supervisor starts its children in order, each linked to it, and traps their exits. When
one ends, its *restart type* says whether it comes back:

- ``permanent`` children are always restarted;
- ``transient`` children only when they end abnormally (not ``"normal"``, ``"shutdown"`` or
  ``("shutdown", term)``);
- ``temporary`` children never; they are forgotten.

The *strategy* says which children a restart concerns:

- ``one_for_one``: only the child that ended;
- ``one_for_all``: every child: the others are shut down (newest first), then all start again
  in order;
- ``rest_for_one``: the child that ended and those started after it.

*Restart intensity*: when more than ``max_restarts`` restarts happen within ``max_seconds``,
the supervisor gives up: it shuts all its children down and exits with ``"shutdown"``. Its own
supervisor sees a child exit and restarts it (or gives up in turn): failures climb the tree
until a level can fix them, or the application stops.

*Shutdown*: children stop in reverse start order. Each gets the ``"shutdown"`` exit signal and
``shutdown`` seconds to end before it is killed (``"brutal_kill"``: killed at once;
``"infinity"``: no limit, the default for child supervisors so that they can stop their own
children first). A GenServer that wants its ``terminate`` to run on shutdown sets
``trap_exit = True``.

Example::

    children = [
        child_spec(Cache),                                  # id: the class
        child_spec(Worker, "jobs", id="jobs", restart="transient"),
        child_spec(DynamicSupervisor, name="rooms"),        # type: "supervisor"
    ]
    sup = await Supervisor.start_link(children, strategy="rest_for_one", name="app")
    await which_children("app")     # [ChildInfo(id=Cache, pid=<0.9.0>, ...), ...]

A *module-based* supervisor is a subclass whose ``init`` returns a :class:`SupervisorSpec`::

    class App(Supervisor):
        def init(self, arg):
            return SupervisorSpec([child_spec(Cache), child_spec(Worker, arg)],
                                  strategy="one_for_all")

    sup = await App.start_link("jobs", name="app")

The functions :func:`which_children`, :func:`count_children`, :func:`start_child`,
:func:`restart_child`, :func:`terminate_child` and :func:`delete_child` take the supervisor's
pid or name; the first four also work on a
:class:`~trunkline.otp.dynamic_supervisor.DynamicSupervisor`. Problems are logged on the
``trunkline.otp`` logger as OTP's supervisor reports (a child failed to start, ended
abnormally, did not shut down cleanly; too many restarts), with the supervisor, child id and
reason in the record's ``extra``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from ._child import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    Intensity,
    Restart,
    Shutdown,
    SupervisorBehaviour,
    SupervisorServer,
    TryAgain,
    check_intensity,
    id_error,
    report,
    shut_down,
    spec_error,
    start_process,
    start_supervisor,
)
from .exceptions import AlreadyStarted, StartError, SupervisorError
from .gen_server import From, Ignore, Stop, call
from .process import SHUTDOWN, Pid, Via, send

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildType",
    "Restart",
    "Shutdown",
    "Startable",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
    "child_spec",
    "count_children",
    "delete_child",
    "restart_child",
    "start_child",
    "terminate_child",
    "which_children",
]

Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")

Server: TypeAlias = "Pid | Via | Hashable"


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor's children and flags: what a module-based supervisor's ``init`` returns.

    Attributes:
        children: the child specs, in start order (ids must be unique).
        strategy: ``"one_for_one"`` (default), ``"one_for_all"`` or ``"rest_for_one"``.
        max_restarts: more restarts than this within ``max_seconds`` make the supervisor give
            up (default 3).
        max_seconds: the intensity window, in seconds (default 5).

    Raises:
        TypeError, ValueError: an invalid option or child list, naming it.
    """

    children: Sequence[ChildSpec]
    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                "strategy must be 'one_for_one', 'one_for_all' or 'rest_for_one', "
                f"not {self.strategy!r}"
            )
        check_intensity(self.max_restarts, self.max_seconds)
        if isinstance(self.children, ChildSpec | str | bytes):
            raise TypeError(f"children must be a sequence of ChildSpec, not {self.children!r}")
        children = tuple(self.children)
        ids: set[Hashable] = set()
        for child in children:
            if not isinstance(child, ChildSpec):
                raise TypeError(
                    f"children must be ChildSpec objects (see child_spec), not {child!r}"
                )
            if child.id in ids:
                raise ValueError(f"duplicate child id {child.id!r}")
            ids.add(child.id)
        object.__setattr__(self, "children", children)


class Supervisor(SupervisorBehaviour):
    """A supervisor; subclass it, with an ``init``, for a module-based supervisor.

    Start one with :meth:`start_link` (see the module documentation). The process runs a
    private GenServer that traps exits; its ``pid._behaviour`` is the :class:`Supervisor`
    instance, so introspection can tell supervisors apart and walk them with
    :func:`which_children`.
    """

    def init(self, arg: Any) -> SupervisorSpec | Ignore | Awaitable[SupervisorSpec | Ignore]:
        """Return the supervisor's children and flags; runs in the new supervisor process.

        Override it in a subclass (plain or ``async``). Return :class:`SupervisorSpec`, or
        :class:`~trunkline.otp.Ignore` to not start at all (``start_link`` raises
        :class:`~trunkline.otp.StartIgnored`). Raising fails the start.
        """
        if isinstance(arg, SupervisorSpec):
            return arg
        raise NotImplementedError(
            f"{type(self).__qualname__} must define init(arg) returning a SupervisorSpec"
        )

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        strategy: Strategy | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
    ) -> Pid:
        """Start a supervisor linked to the caller; return once every child has started.

        On :class:`Supervisor` itself, ``arg`` is the list of :class:`ChildSpec`, and the
        flags default to ``one_for_one``, 3 restarts in 5 seconds. On a subclass, ``arg`` is
        passed to its ``init``, which gives the flags.

        Args:
            arg: the children, or the argument of a subclass's ``init``.
            name: a local name or a :class:`~trunkline.otp.Via` name to register.
            strategy, max_restarts, max_seconds: see :class:`SupervisorSpec`.

        Raises:
            TypeError, ValueError: invalid children or flags (nothing is started), or flags
                given to a subclass.
            StartError: a child failed to start: the children started before it were shut
                down in reverse order, and ``reason`` is
                ``("shutdown", ("failed_to_start_child", child_id, child_reason))``. Also
                when a subclass's ``init`` raised (``reason`` is the exception).
            StartIgnored: a subclass's ``init`` returned ``Ignore``.
            AlreadyStarted: ``name`` is taken.
        """
        return await cls.start(
            arg,
            name=name,
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            link=True,
        )

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        strategy: Strategy | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
        link: bool = False,
    ) -> Pid:
        """:meth:`start_link` without the link (unless ``link`` is true)."""
        if cls.init is Supervisor.init:
            arg = SupervisorSpec(
                () if arg is None else arg,
                strategy="one_for_one" if strategy is None else strategy,
                max_restarts=3 if max_restarts is None else max_restarts,
                max_seconds=5.0 if max_seconds is None else max_seconds,
            )
        elif strategy is not None or max_restarts is not None or max_seconds is not None:
            raise TypeError(
                f"{cls.__qualname__}: strategy, max_restarts and max_seconds come from its "
                "init(), not from start_link()"
            )
        return await start_supervisor(_SupervisorServer, cls.__qualname__, (cls, arg), name, link)


class Startable(Protocol):
    """What :func:`child_spec` needs of a class: GenServer, Stage, Supervisor and their kin."""

    @classmethod
    def start_link(cls, arg: Any = ..., /, *, name: Any = ...) -> Awaitable[Pid]: ...


def child_spec(
    server: type[Startable],
    arg: Any = None,
    *,
    id: Hashable | None = None,
    name: Hashable | Via | None = None,
    restart: Restart = "permanent",
    shutdown: Shutdown | None = None,
    type: ChildType | None = None,
) -> ChildSpec:
    """A :class:`ChildSpec` that starts ``server.start_link(arg, name=name)``.

    Args:
        server: a GenServer, Stage, Supervisor or DynamicSupervisor class (anything with a
            ``start_link(arg, name=...)`` class method).
        arg: passed to its ``init`` (for a plain Supervisor, the children; for a
            DynamicSupervisor, a mapping of its options).
        id: the child id; default: the class itself.
        name: a name to register the child under.
        restart, shutdown: see :class:`ChildSpec`.
        type: default ``"supervisor"`` for a supervisor class (any whose ``otp_kind`` is
            ``"supervisor"``), so that it gets all the time it needs to shut down; else
            ``"worker"``.

    Example::

        child_spec(Worker, {"queue": "mail"}, id="mail", restart="transient")
        child_spec(DynamicSupervisor, {"max_children": 1000}, name="rooms")
    """
    if type is None:
        type = "supervisor" if getattr(server, "otp_kind", None) == "supervisor" else "worker"
    if name is None:
        start = functools.partial(server.start_link, arg)
    else:
        start = functools.partial(server.start_link, arg, name=name)
    child_id: Hashable = server if id is None else id
    return ChildSpec(child_id, start, restart, shutdown, type)


# -- client API ----------------------------------------------------------------------------------


async def _request(supervisor: Server, request: Any) -> Any:
    # Supervisors answer errors as values, raised here, in the caller: a bad request must
    # never take the supervisor down. No timeout: starting a child may take its time, as in OTP.
    result = await call(supervisor, request, timeout=None)
    if isinstance(result, Exception):
        raise result
    return result


async def which_children(supervisor: Server) -> list[ChildInfo]:
    """The supervisor's children, in start order.

    Raises:
        CallError: the supervisor is not running.
    """
    result: list[ChildInfo] = await _request(supervisor, "which_children")
    return result


async def count_children(supervisor: Server) -> ChildCounts:
    """How many children the supervisor has: in all, running, supervisors and workers.

    Raises:
        CallError: the supervisor is not running.
    """
    result: ChildCounts = await _request(supervisor, "count_children")
    return result


async def start_child(supervisor: Server, spec: ChildSpec) -> Pid | None:
    """Add a child to the supervisor and start it; its pid, or ``None`` if it ignored.

    A child that ignores its start is still added, not running (a ``temporary`` one is not).
    For a :class:`~trunkline.otp.dynamic_supervisor.DynamicSupervisor` the id need not be
    unique.

    Raises:
        AlreadyStarted: a child with this id is running (``pid`` is its pid), or the child's
            own name is taken.
        SupervisorError: ``"already_present"``: a child with this id exists, not running
            (restart or delete it); ``"max_children"``: a dynamic supervisor is full.
        StartError: the child failed to start (``reason`` says why); nothing was added.
        CallError: the supervisor is not running.
    """
    error = spec_error(spec)
    if error is not None:
        raise error
    result: Pid | None = await _request(supervisor, ("start_child", spec))
    return result


async def restart_child(supervisor: Server, child_id: Hashable) -> Pid | None:
    """Start again a child that is not running (terminated, or ignored its start).

    Returns its new pid, or ``None`` if it ignored the start.

    Raises:
        SupervisorError: ``"not_found"``, ``"running"``, or ``"restarting"`` (the supervisor
            is retrying a failed restart of it already).
        StartError: it failed to start; it stays in the supervisor, not running.
        TypeError: ``child_id`` is not hashable.
    """
    result: Pid | None = await _request(supervisor, ("restart_child", _checked(child_id)))
    return result


async def terminate_child(supervisor: Server, child: Hashable | Pid) -> None:
    """Shut a child down (by id; by pid for a dynamic supervisor) and do not restart it.

    The child's spec stays, so it can be restarted with :func:`restart_child`, unless the
    child is ``temporary`` or the supervisor dynamic: then it is removed.

    Raises:
        SupervisorError: ``"not_found"``.
        TypeError: ``child`` is not hashable.
    """
    await _request(supervisor, ("terminate_child", _checked(child)))


async def delete_child(supervisor: Server, child_id: Hashable) -> None:
    """Remove the spec of a child that is not running.

    Raises:
        SupervisorError: ``"not_found"``, ``"running"`` or ``"restarting"``.
        TypeError: ``child_id`` is not hashable.
    """
    await _request(supervisor, ("delete_child", _checked(child_id)))


def _checked(child_id: Any) -> Any:
    error = id_error(child_id)
    if error is not None:
        raise error
    return child_id


# -- the supervisor process ------------------------------------------------------------------------


class _Child:
    __slots__ = ("pid", "restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: Pid | None = None
        self.restarting = False


class _SupervisorServer(SupervisorServer):
    strategy: Strategy
    children: dict[Hashable, _Child]  # by id, in start order
    by_pid: dict[Pid, _Child]  # the running ones

    async def init(self, arg: tuple[type[Supervisor], Any]) -> Ignore | Stop | None:
        cls, init_arg = arg
        module = cls()
        self.adopt(module)
        spec = module.init(init_arg)
        if inspect.isawaitable(spec):
            spec = await spec
        if isinstance(spec, Ignore):
            return spec
        if not isinstance(spec, SupervisorSpec):
            raise TypeError(
                f"{cls.__qualname__}.init must return a SupervisorSpec or Ignore(), not {spec!r}"
            )
        self.strategy = spec.strategy
        self.intensity = Intensity(spec.max_restarts, spec.max_seconds)
        self.children = {child.id: _Child(child) for child in spec.children}
        self.by_pid = {}
        failed = await self._start_children(list(self.children.values()))
        if failed is not None:
            child, reason = failed
            await self._stop_children(reversed(list(self.children.values())))
            return Stop((SHUTDOWN, ("failed_to_start_child", child.spec.id, reason)))
        return None

    # -- requests ------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ("restart_child" | "terminate_child" | "delete_child", child_id) if (
                error := id_error(child_id)
            ) is not None:
                return error  # the client checks too; a hand-made request must not kill us
            case "which_children":
                return [
                    ChildInfo(c.spec.id, c.pid, c.spec.type, c.spec.restart, c.restarting)
                    for c in self.children.values()
                ]
            case "count_children":
                return self._count()
            case ("start_child", spec):
                return await self._add_child(spec)
            case ("restart_child", child_id):
                return await self._restart_stopped(child_id)
            case ("terminate_child", child_id):
                return await self._terminate_child(child_id)
            case ("delete_child", child_id):
                return self._delete_child(child_id)
        return self.bad_request(request)

    def _count(self) -> ChildCounts:
        active = supervisors = 0
        for child in self.children.values():
            if child.pid is not None and child.pid._alive:
                active += 1
            if child.spec.type == "supervisor":
                supervisors += 1
        specs = len(self.children)
        return ChildCounts(specs, active, supervisors, specs - supervisors)

    async def _add_child(self, spec: Any) -> Pid | Exception | None:
        error = spec_error(spec)
        if error is not None:
            return error
        existing = self.children.get(spec.id)
        if existing is not None:
            if existing.pid is not None:
                return AlreadyStarted(f"child {spec.id!r}", spec.id, existing.pid)
            return SupervisorError(
                "already_present",
                f"child {spec.id!r} exists, not running; restart_child or delete_child it",
            )
        try:
            pid = await start_process(spec)
        except StartError as e:
            return e
        if pid is None and spec.restart == "temporary":
            return None
        child = self.children[spec.id] = _Child(spec)
        self._set_pid(child, pid)
        return pid

    async def _restart_stopped(self, child_id: Hashable) -> Pid | Exception | None:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        if child.restarting:
            return SupervisorError("restarting", f"child {child_id!r} is being restarted")
        if child.pid is not None:
            return SupervisorError("running", f"child {child_id!r} is running")
        try:
            pid = await start_process(child.spec)
        except StartError as e:
            return e
        self._set_pid(child, pid)
        return pid

    async def _terminate_child(self, child_id: Hashable) -> Exception | None:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        await self._stop_children((child,))
        return None

    def _delete_child(self, child_id: Hashable) -> Exception | None:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        if child.restarting:
            return SupervisorError("restarting", f"child {child_id!r} is being restarted")
        if child.pid is not None:
            return SupervisorError("running", f"child {child_id!r} is running")
        del self.children[child_id]
        return None

    # -- children ending -----------------------------------------------------------------------

    async def child_exited(self, pid: Pid, reason: Any) -> Stop | None:
        child = self.by_pid.pop(pid, None)
        if child is None:
            return None  # a process we no longer (or never) supervised
        child.pid = None
        spec = child.spec
        if self.restarts(spec, pid, reason):
            return await self._restart(child, pid, reason)
        if spec.restart == "temporary":
            del self.children[spec.id]
        return None

    async def try_again(self, child_id: Hashable, reason: Any) -> Stop | None:
        child = self.children.get(child_id)
        if child is not None and child.restarting:
            return await self._restart(child, None, reason)
        return None  # stopped, deleted or restarted meanwhile

    async def _restart(self, child: _Child, pid: Pid | None, reason: Any) -> Stop | None:
        if not self.intensity.add_restart():
            child.restarting = False
            report(self.label, "shutdown", child.spec, pid, reason)
            return Stop(SHUTDOWN)
        if self.strategy == "one_for_one":
            to_start = [child]
        else:
            siblings = list(self.children.values())
            if self.strategy == "rest_for_one":
                siblings = siblings[siblings.index(child) :]
            await self._stop_children(reversed(siblings))
            to_start = [c for c in siblings if c.spec.restart != "temporary"]
        failed = await self._start_children(to_start)
        if failed is not None:
            failed_child, failure = failed
            failed_child.restarting = True
            send(self.pid, TryAgain(failed_child.spec.id, failure))
        return None

    # -- starting and stopping -----------------------------------------------------------------

    async def _start_children(self, children: list[_Child]) -> tuple[_Child, Any] | None:
        """Start ``children`` in order; at the first failure, the child and the reason."""
        for child in children:
            spec = child.spec
            try:
                pid = await start_process(spec)
            except StartError as e:
                report(self.label, "start_error", spec, None, e.reason)
                return child, e.reason
            if pid is None and spec.restart == "temporary":
                del self.children[spec.id]
            else:
                self._set_pid(child, pid)
        return None

    async def _stop_children(self, children: Iterable[_Child]) -> None:
        """Shut ``children`` down one after the other; temporary ones are forgotten."""
        for child in children:
            pid = child.pid
            child.restarting = False
            if pid is not None:
                del self.by_pid[pid]
                child.pid = None
                await shut_down(pid, child.spec, self.label)
            if child.spec.restart == "temporary":
                self.children.pop(child.spec.id, None)

    def _set_pid(self, child: _Child, pid: Pid | None) -> None:
        child.pid = pid
        child.restarting = False
        if pid is not None:
            self.by_pid[pid] = child

    async def terminate(self, reason: Any) -> None:
        await self._stop_children(reversed(list(self.children.values())))


def _not_found(child_id: Hashable) -> SupervisorError:
    return SupervisorError("not_found", f"no child {child_id!r}")
