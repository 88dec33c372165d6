"""Processes: isolated units of work with a mailbox, links and monitors.

A process is an asyncio task with a :class:`Pid`. It ends with an *exit reason*:

- ``"normal"`` when its function returns; ``"shutdown"`` or ``("shutdown", term)`` when asked
  to stop; ``"killed"`` after ``exit(pid, "kill")``; the exception when it crashes; or any
  term given to :class:`~trunkline.otp.ProcessExit`.
- When it ends, each *linked* process receives an exit signal with that reason. A process
  that does not trap exits dies of it too (``"normal"`` excepted); one that traps exits gets an
  :class:`Exit` message instead. ``exit(pid, "kill")`` cannot be trapped.
- Each *monitor* gets a :class:`Down` message - at once, with ``"noproc"``, when the process was
  already gone.
- Its registered name, registry entries, subscriptions and tables are released.

Any asyncio task becomes a process the first time it needs to be one (it calls
:func:`self`, :func:`receive`, :func:`link`...), so a script's main coroutine or a test can
talk to processes directly.

Example::

    async def echo() -> None:
        while True:
            sender, text = await receive()
            send(sender, text.upper())

    pid = spawn(echo)
    send(pid, (self(), "hi"))
    assert await receive(timeout=1) == "HI"
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from itertools import islice
from types import CoroutineType
from typing import Any, Protocol

from ._deadlines import TIMEOUT as _TIMEOUT
from ._deadlines import expire as _expire
from .exceptions import NameTaken, NoNode, NoProcess, NotAProcess, ProcessExit
from .node import Node, current_node

__all__ = [
    "KILL",
    "KILLED",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Down",
    "Exit",
    "Pid",
    "Ref",
    "Via",
    "demonitor",
    "exit",
    "is_alive",
    "is_normal_exit",
    "link",
    "monitor",
    "receive",
    "register",
    "resolve",
    "self",
    "send",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "trap_exit",
    "unlink",
    "unregister",
    "whereis",
]

log = logging.getLogger("trunkline.otp")

NORMAL = "normal"
SHUTDOWN = "shutdown"
KILL = "kill"
KILLED = "killed"
NOPROC = "noproc"


class Ref:
    """A unique reference (a monitor, a timer...), printed like Erlang's ``#Ref<0.42>``."""

    __slots__ = ("_id", "_owner", "_target")

    def __init__(self, node: Node) -> None:
        self._id = node.next_ref()
        self._owner: Pid | None = None
        self._target: Pid | None = None

    def __repr__(self) -> str:
        return f"#Ref<0.{self._id}>"


@dataclass(frozen=True, slots=True)
class Exit:
    """The message a process that traps exits gets when a linked process ends."""

    pid: Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """The message a monitoring process gets when the monitored process ends.

    ``pid`` is the monitored pid, or the name that was monitored when it named no process.
    """

    ref: Ref
    pid: Pid | object
    reason: Any


class Died:
    """Put in a caller's future when the process it waits on dies; see ``gen_server.call``."""

    __slots__ = ("reason",)

    def __init__(self, reason: Any) -> None:
        self.reason = reason


class Pid:
    """A process identifier, and the handle the runtime keeps for the process.

    Pids compare by identity, hash, order by creation and print as ``<0.42.0>``. Everything
    else on this object is the runtime's own; use the module's functions.
    """

    __slots__ = (
        "_alive",
        "_behaviour",
        "_callers",
        "_current",
        "_handled",
        "_hooks",
        "_id",
        "_links",
        "_mailbox",
        "_monitoring",
        "_monitors",
        "_name",
        "_node",
        "_parent",
        "_reason",
        "_task",
        "_trap_exit",
        "_waiter",
    )

    def __init__(self, node: Node, parent: Pid | None = None) -> None:
        self._id = node.next_id()
        self._node = node
        self._parent = parent
        self._task: asyncio.Task[Any] | None = None
        # None while empty: an idle process does not keep a deque (760 bytes) around.
        self._mailbox: deque[Any] | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._alive = True
        self._reason: Any = None
        self._trap_exit = False
        self._name: object = None
        self._links: set[Pid] | None = None
        self._monitors: dict[Ref, Pid] | None = None
        self._monitoring: set[Ref] | None = None
        self._callers: set[asyncio.Future[Any]] | None = None
        self._hooks: dict[Hashable, Callable[[Pid, Any], object]] | None = None
        self._behaviour: object = None
        self._handled = 0
        self._current: Any = None

    def __repr__(self) -> str:
        return f"<0.{self._id}.0>"

    def __lt__(self, other: object) -> bool:
        if type(other) is not Pid:
            return NotImplemented
        return self._id < other._id

    def __le__(self, other: object) -> bool:
        if type(other) is not Pid:
            return NotImplemented
        return self._id <= other._id

    def __gt__(self, other: object) -> bool:
        if type(other) is not Pid:
            return NotImplemented
        return self._id > other._id

    def __ge__(self, other: object) -> bool:
        if type(other) is not Pid:
            return NotImplemented
        return self._id >= other._id

    # -- the mailbox: the hot path, kept in methods for speed --------------------------------

    def _deliver(self, message: Any) -> None:
        if self._alive:
            mailbox = self._mailbox
            if mailbox is None:
                mailbox = self._mailbox = deque()
            mailbox.append(message)
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    async def _receive(self, match: Callable[[Any], bool] | None, timeout_s: float | None) -> Any:
        if match is None:
            while True:
                mailbox = self._mailbox
                if mailbox:
                    self._handled += 1
                    message = self._current = mailbox.popleft()
                    return message
                await self._wait(timeout_s)
        # Selective receive: messages that do not match stay, in order, for a later receive.
        # The timeout counts from entry, however many non-matching messages arrive meanwhile.
        clock = self._node.clock
        deadline = None if timeout_s is None else clock.monotonic() + timeout_s
        seen = 0
        while True:
            mailbox = self._mailbox
            if mailbox:
                # islice walks the deque once; mailbox[i] would cost O(i) per message.
                for i, message in enumerate(islice(mailbox, seen, None), seen):
                    if match(message):
                        del mailbox[i]
                        self._handled += 1
                        self._current = message
                        return message
                seen = len(mailbox)
            await self._wait(None if deadline is None else deadline - clock.monotonic())

    async def _wait(self, timeout_s: float | None) -> None:
        """Wait for the next delivery (into an empty mailbox, or after ``seen`` messages)."""
        if not self._mailbox:
            self._mailbox = None
        node = self._node
        waiter = self._waiter = node.loop.create_future()
        if timeout_s is None:
            await waiter
            return
        if timeout_s <= 0:
            self._waiter = None
            raise TimeoutError("receive timed out")
        timer = node.clock.call_later(timeout_s, _expire, waiter)
        try:
            if await waiter is _TIMEOUT:
                self._waiter = None
                raise TimeoutError(f"receive timed out after {timeout_s}s")
        finally:
            timer.cancel()


class ViaRegistry(Protocol):
    """What a registry offers to be used in :class:`Via` names (``trunkline.otp.Registry``)."""

    def whereis_name(self, key: Any) -> Pid | None: ...

    def register_name(self, key: Any, pid: Pid) -> bool: ...

    def unregister_name(self, key: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Via:
    """A name held in a registry, usable wherever a server name is: ``Via(registry, key)``."""

    registry: ViaRegistry
    key: Any


# -- finding processes -----------------------------------------------------------------------


def _current_pid(node: Node) -> Pid | None:
    task = asyncio.current_task(node.loop)
    return _by_task.get(task) if task is not None else None


# Task -> process, for tasks that are processes. A dict beside the task rather than a Task
# subclass, because asyncio's C fast paths only apply to exact Task objects.
_by_task: dict[asyncio.Task[Any] | asyncio.Future[Any], Pid] = {}


def self() -> Pid:
    """The pid of the calling process; a plain asyncio task becomes a process on first call.

    Raises:
        NotAProcess: when called outside any task.
    """
    node = current_node()
    task = asyncio.current_task(node.loop)
    if task is None:
        raise NotAProcess("self() must be called from inside a task")
    pid = _by_task.get(task)
    if pid is None:
        pid = _adopt(node, task)
    return pid


def _adopt(node: Node, task: asyncio.Task[Any]) -> Pid:
    pid = Pid(node)
    pid._task = task
    _by_task[task] = pid
    node.processes.add(pid)
    task.add_done_callback(_task_done)
    return pid


def _task_done(task: asyncio.Task[Any]) -> None:
    """A process's task ended: the process ends with the reason the task gives.

    A done callback rather than a wrapper coroutine: one coroutine frame less per process.
    """
    pid = _by_task.pop(task, None)
    # Retrieve the outcome even when the process is already dead (killed while its task was
    # finishing), or asyncio would report an exception that was never retrieved.
    error = None if task.cancelled() else task.exception()
    if pid is None:
        return
    pid._task = None  # the finished task holds the coroutine's last frame: let it go
    if not pid._alive:
        return
    if task.cancelled():
        if task.cancelling():
            # Cancelled by someone other than the runtime: as abrupt as a kill.
            reason: Any = KILLED
        else:
            # A CancelledError nobody asked this task for (it awaited a future that someone
            # else cancelled) is a crash like any other, and is reported as one.
            reason = asyncio.CancelledError(
                "the process awaited something that was cancelled, and did not handle it"
            )
    elif error is None:
        reason = NORMAL
    elif type(error) is ProcessExit:
        reason = error.reason
    else:
        reason = error
    try:
        if not is_normal_exit(reason) and not (type(reason) is str and reason == KILLED):
            _crash_report(pid, reason)
    finally:
        _die(pid, reason, cancel=False)


def resolve(server: Pid | Via | Hashable) -> Pid | None:
    """The live pid behind a pid, a registered name or a :class:`Via` name, or ``None``."""
    if type(server) is Pid:
        return server if server._alive else None
    if type(server) is Via:
        return server.registry.whereis_name(server.key)
    return current_node().names.get(server)


def whereis(name: Hashable) -> Pid | None:
    """The live process registered locally as ``name``, or ``None``."""
    return current_node().names.get(name)


def is_alive(pid: Pid) -> bool:
    """Whether ``pid`` is alive. A killed process is dead as soon as ``exit`` returns."""
    return pid._alive


# -- spawning ----------------------------------------------------------------------------------


def spawn(
    fn: Callable[..., Coroutine[Any, Any, Any]],
    *args: Any,
    link: bool = False,
    name: Hashable | None = None,
    trap_exit: bool = False,
) -> Pid:
    """Start ``fn(*args)`` as a new process and return its pid at once.

    Args:
        fn: an async function; the process ends when it returns (reason ``"normal"``),
            raises (the exception), or raises :class:`~trunkline.otp.ProcessExit`.
        link: link the new process to the caller (which becomes a process if it was not).
        name: register the new process under this local name.
        trap_exit: start trapping exits before ``fn`` runs.

    Raises:
        NameTaken: ``name`` is held by a live process (nothing is started).
        TypeError: ``fn(*args)`` is not a coroutine, or raised it (nothing is started).
    """
    node = current_node()
    if node.stopping:
        raise NoNode("the node is shutting down: no new processes")
    parent = _current_pid(node)
    if link and parent is None:
        parent = self()
    if name is not None and name in node.names:
        raise NameTaken(name, node.names[name])
    coro = fn(*args)
    if type(coro) is not CoroutineType and not asyncio.iscoroutine(coro):
        raise TypeError(f"spawn needs an async function, and {fn!r} returned {coro!r}")
    pid = Pid(node, parent)
    pid._trap_exit = trap_exit
    if name is not None:
        pid._name = name
        node.names[name] = pid
    if link:
        assert parent is not None
        _link_both(parent, pid)
    node.processes.add(pid)
    task = node.loop.create_task(coro)
    pid._task = task
    _by_task[task] = pid
    task.add_done_callback(_task_done)
    return pid


def spawn_link(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **options: Any) -> Pid:
    """:func:`spawn` with ``link=True``."""
    return spawn(fn, *args, link=True, **options)


def spawn_monitor(
    fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **options: Any
) -> tuple[Pid, Ref]:
    """:func:`spawn`, and monitor the new process from the caller."""
    pid = spawn(fn, *args, **options)
    return pid, monitor(pid)


def is_normal_exit(reason: Any) -> bool:
    """Whether ``reason`` is a normal way to end: ``normal``, ``shutdown`` or ``(shutdown, _)``.

    Supervisors do not restart ``transient`` children that end so, and nothing is logged.
    """
    if type(reason) is str:
        return reason in (NORMAL, SHUTDOWN)
    return type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN


def _crash_report(pid: Pid, reason: Any) -> None:
    behaviour = pid._behaviour
    # A behaviour may say what its internal message shapes mean ("call 'get'").
    describe = getattr(behaviour, "describe_message", repr)
    try:
        last = describe(pid._current)
    except Exception as e:  # a message whose repr fails must not hide the crash
        last = f"<unprintable {type(pid._current).__qualname__}: {e!r}>"
    log.error(
        "process %r%s%s crashed: %r; last message: %s",
        pid,
        f" ({pid._name!r})" if pid._name is not None else "",
        f" [{type(behaviour).__qualname__}]" if behaviour is not None else "",
        reason,
        last,
        exc_info=reason if isinstance(reason, BaseException) else None,
        extra={"pid": repr(pid), "process_name": pid._name, "last_message": last},
    )


# -- messages ----------------------------------------------------------------------------------


def send(dest: Pid | Via | Hashable, message: Any) -> None:
    """Put ``message`` in the mailbox of ``dest`` (a pid, a local name or a :class:`Via`).

    Sending to a dead pid does nothing, as in Erlang.

    Raises:
        NoProcess: ``dest`` is a name that no live process holds.
    """
    if type(dest) is Pid:
        dest._deliver(message)
        return
    pid = resolve(dest)
    if pid is None:
        raise NoProcess(dest)
    pid._deliver(message)


async def receive(
    match: Callable[[Any], bool] | None = None, *, timeout: float | None = None
) -> Any:
    """Take the next message from the caller's mailbox, waiting for one if needed.

    Args:
        match: take the oldest message for which ``match(message)`` is true; the others stay
            in the mailbox, in order (a selective receive).
        timeout: seconds to wait; ``None`` waits forever, ``0`` only looks.

    Raises:
        TimeoutError: no (matching) message arrived in time.
    """
    return await self()._receive(match, timeout)


# -- links, monitors, exit signals -------------------------------------------------------------


def _link_both(a: Pid, b: Pid) -> None:
    if a._links is None:
        a._links = set()
    if b._links is None:
        b._links = set()
    a._links.add(b)
    b._links.add(a)


def link(pid: Pid) -> None:
    """Link the caller and ``pid``: when either ends, the other gets an exit signal.

    Linking to a dead process raises :class:`NoProcess`, or, when the caller traps exits,
    gives it ``Exit(pid, "noproc")``, as in Erlang.
    """
    me = self()
    if pid is me:
        return
    if not pid._alive:
        if not me._trap_exit:
            raise NoProcess(pid)
        me._deliver(Exit(pid, NOPROC))
        return
    _link_both(me, pid)


def unlink(pid: Pid) -> None:
    """Remove the link between the caller and ``pid``, if any."""
    me = self()
    if me._links is not None:
        me._links.discard(pid)
    if pid._links is not None:
        pid._links.discard(me)


def monitor(target: Pid | Via | Hashable) -> Ref:
    """Monitor ``target``: one :class:`Down` message arrives when it ends.

    A target that is already dead, or a name that no process holds, gives ``Down`` at once
    with reason ``"noproc"``.
    """
    me = self()
    ref = Ref(me._node)
    ref._owner = me
    pid = resolve(target)
    if pid is None:
        me._deliver(Down(ref, target, NOPROC))
        return ref
    ref._target = pid
    if pid._monitors is None:
        pid._monitors = {}
    pid._monitors[ref] = me
    if me._monitoring is None:
        me._monitoring = set()
    me._monitoring.add(ref)
    return ref


def demonitor(ref: Ref, *, flush: bool = False) -> None:
    """Stop a monitor; with ``flush``, also drop its ``Down`` message if it already came."""
    target, owner = ref._target, ref._owner
    if target is not None and target._monitors is not None:
        target._monitors.pop(ref, None)
    if owner is not None:
        if owner._monitoring is not None:
            owner._monitoring.discard(ref)
        mailbox = owner._mailbox
        if flush and mailbox:
            for message in list(mailbox):
                if type(message) is Down and message.ref is ref:
                    mailbox.remove(message)


def trap_exit(flag: bool = True) -> bool:
    """Turn exit signals into :class:`Exit` messages for the caller; return the old setting."""
    me = self()
    old, me._trap_exit = me._trap_exit, flag
    return old


def exit(pid: Pid, reason: Any) -> None:
    """Send ``pid`` an exit signal with ``reason``.

    ``"kill"`` kills it whatever it does (it dies with ``"killed"``). Otherwise a process that
    traps exits receives an :class:`Exit` message; one that does not dies with ``reason``,
    unless ``reason`` is ``"normal"``.
    """
    if not pid._alive:
        return
    if type(reason) is str and reason == KILL:
        _die(pid, KILLED)
        return
    sender = self()
    _signal(pid, sender, reason, from_self=sender is pid)


def _signal(pid: Pid, sender: Pid, reason: Any, *, from_self: bool = False) -> None:
    if not pid._alive:
        return
    if pid._trap_exit:
        pid._deliver(Exit(sender, reason))
    elif type(reason) is str and reason == NORMAL and not from_self:
        return
    else:
        _die(pid, reason)


def register(name: Hashable, pid: Pid | None = None) -> None:
    """Register ``pid`` (default: the caller) under a local ``name``, released when it ends.

    Raises:
        NameTaken: the name is held by another live process.
        ValueError: the process is dead, or already has another name, or ``name`` is None.
    """
    if name is None:
        raise ValueError("None is not a process name")
    pid = pid if pid is not None else self()
    node = pid._node
    holder = node.names.get(name)
    if holder is not None:
        if holder is pid:
            return
        raise NameTaken(name, holder)
    if not pid._alive:
        raise ValueError(f"cannot register {name!r}: {pid!r} is not alive")
    if pid._name is not None:
        raise ValueError(f"{pid!r} is already registered as {pid._name!r}")
    pid._name = name
    node.names[name] = pid


def unregister(name: Hashable) -> None:
    """Remove a local name. Unknown names are ignored."""
    node = current_node()
    pid = node.names.pop(name, None)
    if pid is not None:
        pid._name = None


def add_exit_hook(pid: Pid, key: Hashable, hook: Callable[[Pid, Any], object]) -> bool:
    """Call ``hook(pid, reason)`` when ``pid`` ends (once per ``key``).

    How registries, pubsub and tables clean up after a process without a message round trip.
    Returns ``False`` (and calls nothing) when ``pid`` is already dead.
    """
    if not pid._alive:
        return False
    if pid._hooks is None:
        pid._hooks = {}
    pid._hooks[key] = hook
    return True


def remove_exit_hook(pid: Pid, key: Hashable) -> None:
    """Forget the hook added under ``key``."""
    if pid._hooks is not None:
        pid._hooks.pop(key, None)


def add_caller(pid: Pid, future: asyncio.Future[Any]) -> bool:
    """Resolve ``future`` with :class:`Died` when ``pid`` ends; ``False`` if already dead.

    This is the monitor behind ``call``: cheaper than a ``Down`` message, same semantics.
    """
    if not pid._alive:
        return False
    callers = pid._callers
    if callers is None:
        callers = pid._callers = set()
    callers.add(future)
    return True


# -- death -------------------------------------------------------------------------------------


def _die(pid: Pid, reason: Any, *, cancel: bool = True) -> None:
    """End ``pid`` with ``reason`` now: it is dead when this returns.

    Signals to links are processed from a queue, so a long chain of links dies iteratively.
    """
    if not pid._alive:
        return
    pid._alive = False
    pid._reason = reason
    node = pid._node
    node._dying.append((pid, reason))
    if cancel:
        task = pid._task
        if task is not None and not task.done():
            task.cancel()
    if node._draining:
        return
    node._draining = True
    try:
        dying = node._dying
        while dying:
            dead, why = dying.popleft()
            _release(node, dead, why)
    finally:
        node._draining = False


def _release(node: Node, pid: Pid, reason: Any) -> None:
    node.processes.discard(pid)
    # Dead pids live on in messages, child lists and refs: they must not keep the server's
    # state or its last message alive.
    pid._current = pid._behaviour = None
    if pid._name is not None:
        if node.names.get(pid._name) is pid:
            del node.names[pid._name]
        pid._name = None
    pid._mailbox = None
    if pid._callers:
        died = Died(reason)
        for future in pid._callers:
            if not future.done():
                future.set_result(died)
        pid._callers = None
    if pid._hooks:
        hooks, pid._hooks = pid._hooks, None
        for hook in hooks.values():
            try:
                hook(pid, reason)
            except Exception:
                log.exception("exit hook %r failed for %r", hook, pid)
    if pid._monitoring:
        for ref in pid._monitoring:
            target = ref._target
            if target is not None and target._monitors is not None:
                target._monitors.pop(ref, None)
        pid._monitoring = None
    if pid._monitors:
        monitors, pid._monitors = pid._monitors, None
        for ref, watcher in monitors.items():
            if watcher._monitoring is not None:
                watcher._monitoring.discard(ref)
            watcher._deliver(Down(ref, pid, reason))
    if pid._links:
        links, pid._links = pid._links, None
        for linked in sorted(links):
            if linked._links is not None:
                linked._links.discard(pid)
            _signal(linked, pid, reason)


async def shutdown_node(node: Node, *, grace_s: float = 1.0) -> None:
    """Kill every process of ``node``, newest first, and wait for their tasks to unwind.

    For test teardown and the last step of stopping an application; an orderly stop goes
    through the supervision tree first.
    """
    node.stopping = True
    current = asyncio.current_task(node.loop)
    caller = _by_task.get(current) if current is not None else None
    if caller is not None:
        # The caller outlives this; the "killed" signals of its links must not cancel it.
        caller._trap_exit = True
    tasks = []
    for pid in sorted(node.processes, reverse=True):
        task = pid._task
        if task is current:
            continue
        _die(pid, KILLED)
        if task is not None and not task.done():
            tasks.append(task)
    if tasks:
        await asyncio.wait(tasks, timeout=grace_s)
