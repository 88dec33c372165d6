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
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from ._child import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Intensity,
    check_intensity,
    describe,
    log,
    report,
    shut_down,
    shut_down_all,
    start_process,
)
from .exceptions import AlreadyStarted, StartError, StartIgnored, SupervisorError
from .gen_server import From, GenServer, Stop
from .process import SHUTDOWN, Exit, Pid, Via, is_normal_exit, send
from .supervisor import count_children, start_child, terminate_child, which_children

__all__ = [
    "DynamicSupervisor",
    "count_children",
    "start_child",
    "terminate_child",
    "which_children",
]


class DynamicSupervisor:
    """A supervisor of children started on demand; see the module documentation.

    The process runs a private GenServer that traps exits; its ``pid._behaviour`` is a
    :class:`DynamicSupervisor` instance.
    """

    otp_kind: ClassVar[str] = "supervisor"  # what introspection calls this behaviour

    @classmethod
    async def start_link(
        cls,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: Hashable | Via | None = None,
    ) -> Pid:
        """Start a dynamic supervisor, linked to the caller, with no children.

        Args:
            max_children: at most this many children (``None``: no limit).
            max_restarts: more restarts than this within ``max_seconds`` make the supervisor
                shut its children down and exit with ``"shutdown"`` (default 3 in 5 s).
            max_seconds: the intensity window, in seconds.
            name: a local name or a :class:`~trunkline.otp.Via` name to register.

        Raises:
            ValueError: an invalid option, named in the message.
            AlreadyStarted: ``name`` is taken.
        """
        return await cls.start(
            max_children=max_children,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            link=True,
        )

    @classmethod
    async def start(
        cls,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: Hashable | Via | None = None,
        link: bool = False,
    ) -> Pid:
        """:meth:`start_link` without the link (unless ``link`` is true)."""
        if max_children is not None and (type(max_children) is not int or max_children < 0):
            raise ValueError(f"max_children must be None or an integer >= 0, not {max_children!r}")
        check_intensity(max_restarts, max_seconds)
        flags = (cls, max_children, max_restarts, max_seconds)
        try:
            return await _DynamicServer.start(flags, name=name, link=link, timeout=None)
        except AlreadyStarted as e:
            raise AlreadyStarted(cls.__qualname__, e.name, e.pid) from None
        except StartIgnored:  # pragma: no cover - init never ignores
            raise StartIgnored(cls.__qualname__) from None
        except StartError as e:
            raise StartError(cls.__qualname__, e.reason) from None


class _TryAgain:
    """A failed restart (for ``reason``) of the child that was ``pid``, retried after the
    messages already in the mailbox."""

    __slots__ = ("pid", "reason")

    def __init__(self, pid: Pid, reason: Any) -> None:
        self.pid = pid
        self.reason = reason


class _DynamicServer(GenServer):
    trap_exit = True

    module: DynamicSupervisor
    max_children: int | None
    intensity: Intensity
    # Every child by pid, in start order. A child whose restart failed stays under its old pid
    # and is also in `restarting` until a retry starts it.
    children: dict[Pid, ChildSpec]
    restarting: set[Pid]

    def init(self, arg: tuple[type[DynamicSupervisor], int | None, int, float]) -> None:
        cls, self.max_children, max_restarts, max_seconds = arg
        self.module = cls()
        self.pid._behaviour = self.module
        self.intensity = Intensity(max_restarts, max_seconds)
        self.children = {}
        self.restarting = set()

    @property
    def label(self) -> str:
        return describe(self.pid, type(self.module).__qualname__)

    # -- requests ------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Any:
        # start_child first and by hand: it is the hot path.
        if type(request) is tuple and len(request) == 2 and request[0] == "start_child":
            spec = request[1]
            if type(spec) is not ChildSpec:
                return TypeError(f"start_child needs a ChildSpec, not {spec!r}")
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
        return SupervisorError("bad_request", f"{self.label} does not understand {request!r}")

    async def _terminate_child(self, pid: Any) -> SupervisorError | None:
        spec = self.children.pop(pid, None) if type(pid) is Pid else None
        if spec is None:
            return SupervisorError("not_found", f"{pid!r} is not a child of {self.label}")
        if pid in self.restarting:
            self.restarting.discard(pid)
        else:
            await shut_down(pid, spec, self.label)
        return None

    def handle_cast(self, request: Any) -> None:
        log.error("%s received an unexpected cast: %r", self.label, request)

    # -- children ending -----------------------------------------------------------------------

    async def handle_info(self, message: Any) -> Stop | None:
        if type(message) is Exit:
            pid = message.pid
            spec = self.children.get(pid)
            if spec is None or pid in self.restarting:
                return None  # not (or no longer) a child
            reason = message.reason
            if spec.restart == "permanent" or (
                spec.restart == "transient" and not is_normal_exit(reason)
            ):
                report(self.label, "child_terminated", spec, pid, reason)
                return await self._restart(pid, spec, reason)
            if not is_normal_exit(reason):
                report(self.label, "child_terminated", spec, pid, reason)
            del self.children[pid]
            return None
        if type(message) is _TryAgain:
            spec = self.children.get(message.pid)
            if spec is not None and message.pid in self.restarting:
                return await self._restart(message.pid, spec, message.reason)
            return None
        log.error("%s received an unexpected message: %r", self.label, message)
        return None

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
            send(self.pid, _TryAgain(old, e.reason))
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
