"""DynamicSupervisor: a supervisor that starts with no children and adds them on demand.

For many children of the same kind started while the system runs - a process per chat room,
per connection, per job - as Elixir's ``DynamicSupervisor``. Children are added with
:func:`start_child` and removed with :func:`terminate_child` (by pid); they are restarted one
for one, with the same restart types, restart intensity and shutdown rules as a
:class:`~trunkline.otp.supervisor.Supervisor`. Child ids are not used (they need not be
unique).

When the supervisor stops, exit signals go to its children in reverse start order, and they
stop concurrently, each within its own shutdown time (so 100,000 children with a 5 s shutdown
take 5 s, not 500,000). Starting a child costs a few dictionary operations beside the child's
own start: there is no scan of the children anywhere but in ``which_children`` and
``count_children``.

Example::

    rooms = await DynamicSupervisor.start_link(name="rooms", max_children=10_000)
    pid = await start_child("rooms", child_spec(Room, room_id, restart="transient"))
    ...
    await terminate_child("rooms", pid)

Under a supervisor, :func:`~trunkline.otp.child_spec` makes its spec, with the options as its
argument (as Elixir's ``{DynamicSupervisor, name: Rooms, max_children: 10_000}``)::

    children = [child_spec(DynamicSupervisor, {"max_children": 10_000}, name="rooms")]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from ._child import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Intensity,
    SupervisorBehaviour,
    SupervisorServer,
    TryAgain,
    check_intensity,
    report,
    shut_down,
    shut_down_all,
    spec_error,
    start_process,
    start_supervisor,
)
from .exceptions import StartError, SupervisorError
from .gen_server import From, Stop
from .process import SHUTDOWN, Pid, Via, send
from .supervisor import count_children, start_child, terminate_child, which_children

__all__ = [
    "DynamicSupervisor",
    "count_children",
    "start_child",
    "terminate_child",
    "which_children",
]


_OPTIONS = ("max_children", "max_restarts", "max_seconds")


class DynamicSupervisor(SupervisorBehaviour):
    """A supervisor of children started on demand; see the module documentation.

    The process runs a private GenServer that traps exits; its ``pid._behaviour`` is a
    :class:`DynamicSupervisor` instance.
    """

    @classmethod
    async def start_link(
        cls,
        arg: Mapping[str, Any] | None = None,
        *,
        name: Hashable | Via | None = None,
        max_children: int | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
    ) -> Pid:
        """Start a dynamic supervisor, linked to the caller, with no children.

        The options come as keywords, or in ``arg``: the shape every ``start_link`` has, so
        that ``child_spec(DynamicSupervisor, {"max_children": 100}, name="rooms")`` works.

        Args:
            arg: ``None``, or a mapping of the options below (not ``name``).
            name: a local name or a :class:`~trunkline.otp.Via` name to register.
            max_children: at most this many children (``None``: no limit).
            max_restarts: more restarts than this within ``max_seconds`` make the supervisor
                shut its children down and exit with ``"shutdown"`` (default 3 in 5 s).
            max_seconds: the intensity window, in seconds.

        Raises:
            TypeError: ``arg`` is not a mapping, names an unknown option, or gives one that
                is also given as a keyword.
            ValueError: an invalid option, named in the message.
            AlreadyStarted: ``name`` is taken.

        Example::

            rooms = await DynamicSupervisor.start_link(name="rooms", max_children=10_000)
        """
        return await cls.start(
            arg,
            name=name,
            max_children=max_children,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            link=True,
        )

    @classmethod
    async def start(
        cls,
        arg: Mapping[str, Any] | None = None,
        *,
        name: Hashable | Via | None = None,
        max_children: int | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
        link: bool = False,
    ) -> Pid:
        """:meth:`start_link` without the link (unless ``link`` is true)."""
        options: dict[str, Any] = {
            "max_children": max_children,
            "max_restarts": max_restarts,
            "max_seconds": max_seconds,
        }
        if arg is not None:
            if not isinstance(arg, Mapping):
                raise TypeError(
                    f"{cls.__qualname__}: arg must be a mapping of options, not {arg!r}"
                )
            for option, value in arg.items():
                if option not in _OPTIONS:
                    raise TypeError(
                        f"{cls.__qualname__}: unknown option {option!r}; "
                        "expected max_children, max_restarts or max_seconds"
                    )
                if options[option] is not None:
                    raise TypeError(f"{cls.__qualname__}: {option} given twice")
                options[option] = value
        max_children = options["max_children"]
        if max_children is not None and (type(max_children) is not int or max_children < 0):
            raise ValueError(f"max_children must be None or an integer >= 0, not {max_children!r}")
        restarts = 3 if options["max_restarts"] is None else options["max_restarts"]
        seconds = 5.0 if options["max_seconds"] is None else options["max_seconds"]
        check_intensity(restarts, seconds)
        flags = (cls, max_children, restarts, seconds)
        return await start_supervisor(_DynamicServer, cls.__qualname__, flags, name, link)


class _DynamicServer(SupervisorServer):
    max_children: int | None
    # Every child by pid, in start order. A child whose restart failed stays under its old pid
    # and is also in `restarting` until a retry starts it.
    children: dict[Pid, ChildSpec]
    restarting: set[Pid]

    def init(self, arg: tuple[type[DynamicSupervisor], int | None, int, float]) -> None:
        cls, self.max_children, max_restarts, max_seconds = arg
        self.adopt(cls())
        self.intensity = Intensity(max_restarts, max_seconds)
        self.children = {}
        self.restarting = set()

    # -- requests ------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Any:
        # start_child first and by hand: it is the hot path.
        if type(request) is tuple and len(request) == 2 and request[0] == "start_child":
            spec = request[1]
            error = spec_error(spec)
            if error is not None:
                return error
            children = self.children
            if self.max_children is not None and len(children) >= self.max_children:
                return SupervisorError(
                    "max_children", f"{self.label} has {self.max_children} children"
                )
            try:
                pid = await start_process(spec)
            except StartError as e:
                return e
            if pid is not None:
                children[pid] = spec
            return pid
        match request:
            case "which_children":
                restarting = self.restarting
                return [
                    ChildInfo(spec.id, None, spec.type, spec.restart, True)
                    if pid in restarting
                    else ChildInfo(spec.id, pid, spec.type, spec.restart)
                    for pid, spec in self.children.items()
                ]
            case "count_children":
                supervisors = sum(spec.type == "supervisor" for spec in self.children.values())
                specs = len(self.children)
                return ChildCounts(
                    specs, specs - len(self.restarting), supervisors, specs - supervisors
                )
            case ("terminate_child", pid):
                return await self._terminate_child(pid)
            case ("restart_child" | "delete_child", _):
                return SupervisorError(
                    "not_supported",
                    f"{self.label} is dynamic: its children are added with start_child and "
                    "removed with terminate_child",
                )
        return self.bad_request(request)

    async def _terminate_child(self, pid: Any) -> SupervisorError | None:
        spec = self.children.pop(pid, None) if type(pid) is Pid else None
        if spec is None:
            return SupervisorError("not_found", f"{pid!r} is not a child of {self.label}")
        if pid in self.restarting:
            self.restarting.discard(pid)
        else:
            await shut_down(pid, spec, self.label)
        return None

    # -- children ending -----------------------------------------------------------------------

    async def child_exited(self, pid: Pid, reason: Any) -> Stop | None:
        spec = self.children.get(pid)
        if spec is None or pid in self.restarting:
            return None  # not (or no longer) a child
        if self.restarts(spec, pid, reason):
            return await self._restart(pid, spec, reason)
        del self.children[pid]
        return None

    async def try_again(self, child: Hashable, reason: Any) -> Stop | None:
        # Here a child is known by its old pid: the one it is still filed under.
        if type(child) is Pid and child in self.restarting:
            return await self._restart(child, self.children[child], reason)
        return None  # terminated meanwhile

    async def _restart(self, old: Pid, spec: ChildSpec, reason: Any) -> Stop | None:
        children = self.children
        if not self.intensity.add_restart():
            del children[old]
            self.restarting.discard(old)
            report(self.label, "shutdown", spec, old, reason)
            return Stop(SHUTDOWN)
        try:
            pid = await start_process(spec)
        except StartError as e:
            report(self.label, "start_error", spec, None, e.reason)
            self.restarting.add(old)
            send(self.pid, TryAgain(old, e.reason))
            return None
        del children[old]
        self.restarting.discard(old)
        if pid is not None:
            children[pid] = spec
        return None

    async def terminate(self, reason: Any) -> None:
        restarting = self.restarting
        await shut_down_all(
            ((pid, spec) for pid, spec in reversed(self.children.items()) if pid not in restarting),
            self.label,
        )
