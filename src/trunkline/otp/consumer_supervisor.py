"""ConsumerSupervisor: a consumer stage that runs each event as a supervised child.

As Elixir's ``ConsumerSupervisor``: subscribed to producers, it asks each for ``max_demand``
events and starts one child per event, from a template called with the event. A child that
ends frees its demand slot; once ``min_demand`` slots are free for a producer, the supervisor
asks it for that many more. So at most ``max_demand`` children run per producer, and the
producer is asked for work as children finish: a pool where each job is its own process, which
is how the job queue runs jobs.

Children are supervised one for one, with the template's restart type:

- ``"temporary"`` (the default): never restarted; whatever way it ends frees its slot;
- ``"transient"``: restarted, with the same event, when it ends abnormally (its slot stays
  taken meanwhile); its slot is freed when it ends normally (``"normal"``, ``"shutdown"``,
  ``("shutdown", term)``) or can no longer be restarted.

``"permanent"`` is refused, as in Elixir: a child made for one event has to end some time.
Restart intensity and shutdown work as in a :class:`~trunkline.otp.Supervisor`: more than
``max_restarts`` restarts in ``max_seconds`` and the consumer supervisor shuts its children down
and exits with ``"shutdown"``. Failures are logged as supervisor reports.

:func:`~trunkline.otp.which_children`, :func:`~trunkline.otp.count_children` and
:func:`~trunkline.otp.terminate_child` (by pid) work on it, and it appears in
:func:`~trunkline.otp.supervision_tree`.

Example::

    async def run_job(job):           # starts the child linked to the caller, returns its pid
        return otp.spawn_link(perform, job)

    await ConsumerSupervisor.start_link(
        run_job, restart="transient", subscribe_to=[("jobs:mail", {"max_demand": 10})]
    )

    # or with a GenServer class: each child is Worker.start_link(event)
    await ConsumerSupervisor.start_link(Worker, subscribe_to=["jobs:mail"])
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from ._child import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    Intensity,
    Shutdown,
    check_intensity,
    describe,
    log,
    report,
    shut_down,
    shut_down_all,
    start_process,
)
from ._stage_protocol import Subscription
from .exceptions import AlreadyStarted, StartError, SupervisorError
from .gen_server import From, Stop
from .process import SHUTDOWN, Exit, Pid, Via, is_normal_exit, send
from .stage import Cancellation, ConsumerInit, Stage, ask
from .supervisor import count_children, terminate_child, which_children

__all__ = ["ConsumerSupervisor", "count_children", "terminate_child", "which_children"]

StartChild = Callable[[Any], Awaitable["Pid | None"]]


class ConsumerSupervisor:
    """A consumer that starts a supervised child per event; see the module documentation.

    The process is a consumer :class:`~trunkline.otp.stage.Stage` that traps exits; its
    ``pid._behaviour`` tells introspection it is a supervisor.
    """

    otp_kind: ClassVar[str] = "supervisor"  # what introspection calls this behaviour

    @classmethod
    async def start_link(
        cls,
        child: Any,
        *,
        restart: Literal["temporary", "transient"] = "temporary",
        shutdown: Shutdown | None = None,
        type: ChildType = "worker",
        subscribe_to: Sequence[Any] = (),
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: Hashable | Via | None = None,
    ) -> Pid:
        """Start a consumer supervisor linked to the caller.

        Args:
            child: the template: a GenServer or Stage class (each child is
                ``child.start_link(event)``), or an async function ``start(event)`` that
                starts the child linked to the caller and returns its pid (``None`` or
                :class:`~trunkline.otp.StartIgnored`: the event is skipped).
            restart: ``"temporary"`` (default) or ``"transient"``; see the module docs.
            shutdown: as for a :class:`~trunkline.otp.ChildSpec` (default 5 s for workers).
            type: ``"worker"`` (default) or ``"supervisor"``.
            subscribe_to: producers, each a producer or ``(producer, options)`` as for
                :func:`~trunkline.otp.stage.subscribe` (``max_demand`` is the most children
                at once per producer).
            max_restarts, max_seconds: the restart intensity (default 3 in 5 s).
            name: a local name or a :class:`~trunkline.otp.Via` name to register.

        Raises:
            TypeError, ValueError: an invalid option, named in the message (nothing starts).
            StartError: a ``permanent`` or ``transient`` subscription found no producer.
            AlreadyStarted: ``name`` is taken.
        """
        return await cls.start(
            child,
            restart=restart,
            shutdown=shutdown,
            type=type,
            subscribe_to=subscribe_to,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            link=True,
        )

    @classmethod
    async def start(
        cls,
        child: Any,
        *,
        restart: Literal["temporary", "transient"] = "temporary",
        shutdown: Shutdown | None = None,
        type: ChildType = "worker",
        subscribe_to: Sequence[Any] = (),
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: Hashable | Via | None = None,
        link: bool = False,
    ) -> Pid:
        """:meth:`start_link` without the link (unless ``link`` is true)."""
        if restart not in ("temporary", "transient"):
            raise ValueError(
                f"a ConsumerSupervisor does not support restart={restart!r}: a child started "
                "for an event must end; use 'temporary' (never restarted) or 'transient' "
                "(restarted only after an abnormal exit)"
            )
        start = _start_function(child)
        label = getattr(child, "__qualname__", None) or repr(child)
        # What every child's spec will be but its event: validates restart, shutdown and type
        # now, with a ChildSpec's messages, and names the children in supervisor reports.
        template = ChildSpec(label, functools.partial(start, None), restart, shutdown, type)
        check_intensity(max_restarts, max_seconds)
        init = ConsumerInit(subscribe_to=subscribe_to)  # validates subscribe_to
        arg = (template, start, init, max_restarts, max_seconds)
        what = cls.__qualname__
        try:
            return await _ConsumerSupervisorStage.start(arg, name=name, link=link, timeout=None)
        except AlreadyStarted as e:
            raise AlreadyStarted(what, e.name, e.pid) from None
        except StartError as e:
            raise StartError(what, e.reason) from None


def _start_function(child: Any) -> StartChild:
    start: StartChild
    if isinstance(child, type) and hasattr(child, "start_link"):
        start = child.start_link
    elif callable(child):
        start = child
    else:
        raise TypeError(
            "child must be a GenServer or Stage class, or an async function start(event) -> "
            f"Pid, not {child!r}"
        )
    return start


class _Child:
    __slots__ = ("restarting", "spec", "subscription")

    def __init__(self, spec: ChildSpec, subscription: Subscription) -> None:
        self.spec = spec  # its start function holds the event, to restart it with
        self.subscription = subscription  # whose demand slot it holds
        self.restarting = False


class _Slots:
    """Demand of one subscription: children running for it, freed slots not yet asked for."""

    __slots__ = ("max", "min", "pending", "running")

    def __init__(self, min_demand: int, max_demand: int) -> None:
        self.min = min_demand
        self.max = max_demand
        self.running = 0
        self.pending = 0


class _TryAgain:
    """A failed restart of the child that was ``pid``, retried after what is in the mailbox."""

    __slots__ = ("pid",)

    def __init__(self, pid: Pid) -> None:
        self.pid = pid


class _ConsumerSupervisorStage(Stage):
    trap_exit = True
    otp_kind: ClassVar[str] = "supervisor"
    otp_module: ClassVar[type] = ConsumerSupervisor

    template: ChildSpec
    start_child: StartChild
    intensity: Intensity
    children: dict[Pid, _Child]  # in start order; restarting ones under their old pid
    slots: dict[Subscription, _Slots]

    def init(self, arg: tuple[Any, ...]) -> ConsumerInit:
        init: ConsumerInit
        self.template, self.start_child, init, max_restarts, max_seconds = arg
        self.intensity = Intensity(max_restarts, max_seconds)
        self.children = {}
        self.slots = {}
        return init

    @property
    def label(self) -> str:
        return describe(self.pid, "ConsumerSupervisor")

    # -- demand ----------------------------------------------------------------------------------

    def handle_subscribe(
        self, kind: str, options: Mapping[str, Any], subscription: Subscription
    ) -> str:
        slots = self.slots[subscription] = _Slots(options["min_demand"], options["max_demand"])
        ask(subscription, slots.max)
        return "manual"

    def handle_cancel(self, cancellation: Cancellation, subscription: Subscription) -> None:
        self.slots.pop(subscription, None)
        # Its children run on; the slots they free are asked of nobody.

    async def handle_events(self, events: list[Any], from_: Subscription) -> None:
        template = self.template
        children = self.children
        started = failed = 0
        for event in events:
            spec = self._spec(event)
            try:
                pid = await start_process(spec)
            except StartError as e:
                report(self.label, "start_error", template, None, e.reason)
                failed += 1
                continue
            if pid is None:
                failed += 1  # ignored: its slot is free at once
                continue
            children[pid] = _Child(spec, from_)
            started += 1
        self._account(from_, started + failed, failed)

    def _spec(self, event: Any) -> ChildSpec:
        template = self.template
        return ChildSpec(
            template.id,
            functools.partial(self.start_child, event),
            template.restart,
            template.shutdown,
            template.type,
        )

    def _account(self, subscription: Subscription, taken: int, freed: int) -> None:
        """``taken`` slots were used and ``freed`` given back; ask again past ``min``."""
        slots = self.slots.get(subscription)
        if slots is None:
            return  # its producer has gone: nobody to ask
        if slots.running + taken > slots.max:
            log.error(
                "%s received %d events in excess from %r",
                self.label,
                slots.running + taken - slots.max,
                subscription,
            )
        slots.running += taken - freed
        pending = slots.pending + freed
        if pending and pending >= slots.min:
            slots.pending = 0
            ask(subscription, pending)
        else:
            slots.pending = pending

    # -- children ending ---------------------------------------------------------------------------

    async def handle_info(self, message: Any) -> Stop | None:
        if type(message) is Exit:
            child = self.children.get(message.pid)
            if child is None or child.restarting:
                return None  # not (or no longer) a child
            return await self._child_exited(message.pid, child, message.reason)
        if type(message) is _TryAgain:
            child = self.children.get(message.pid)
            if child is not None and child.restarting:
                return await self._restart(message.pid, child, "restart failed")
            return None
        log.error("%s received an unexpected message: %r", self.label, message)
        return None

    async def _child_exited(self, pid: Pid, child: _Child, reason: Any) -> Stop | None:
        if child.spec.restart == "transient" and not is_normal_exit(reason):
            report(self.label, "child_terminated", child.spec, pid, reason)
            return await self._restart(pid, child, reason)
        if not is_normal_exit(reason):
            report(self.label, "child_terminated", child.spec, pid, reason)
        self._remove(pid, child)
        return None

    async def _restart(self, old: Pid, child: _Child, reason: Any) -> Stop | None:
        if not self.intensity.add_restart():
            report(self.label, "shutdown", child.spec, old, reason)
            self._remove(old, child)
            return Stop(SHUTDOWN)
        try:
            pid = await start_process(child.spec)
        except StartError as e:
            report(self.label, "start_error", child.spec, None, e.reason)
            child.restarting = True
            send(self.pid, _TryAgain(old))
            return None
        if pid is None:
            self._remove(old, child)
            return None
        del self.children[old]
        child.restarting = False
        self.children[pid] = child  # it keeps the slot of the child it replaces
        return None

    def _remove(self, pid: Pid, child: _Child) -> None:
        del self.children[pid]
        self._account(child.subscription, 0, 1)

    # -- requests ----------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case "which_children":
                return [
                    ChildInfo(
                        child.spec.id,
                        None if child.restarting else pid,
                        child.spec.type,
                        child.spec.restart,
                        child.restarting,
                    )
                    for pid, child in self.children.items()
                ]
            case "count_children":
                total = len(self.children)
                active = total - sum(child.restarting for child in self.children.values())
                supervisors = total if self.template.type == "supervisor" else 0
                return ChildCounts(1, active, supervisors, total - supervisors)
            case ("terminate_child", pid):
                child = self.children.get(pid) if type(pid) is Pid else None
                if child is None:
                    return SupervisorError("not_found", f"{pid!r} is not a child of {self.label}")
                if not child.restarting:
                    await shut_down(pid, child.spec, self.label)
                self._remove(pid, child)
                return None
            case ("start_child" | "restart_child" | "delete_child", _):
                return SupervisorError(
                    "not_supported",
                    f"{self.label} starts its children from the events it consumes",
                )
        return SupervisorError("bad_request", f"{self.label} does not understand {request!r}")

    async def terminate(self, reason: Any) -> None:
        await shut_down_all(
            (
                (pid, child.spec)
                for pid, child in reversed(self.children.items())
                if not child.restarting
            ),
            self.label,
        )
