"""Looking inside a running node: its processes and its supervision trees.

What the dashboard and the CLI show, and what a person debugging a stuck system asks first:
which processes exist, what they are, how full their mailboxes are, who they are linked to and
who supervises them.

Example::

    for info in list_processes():
        if info.mailbox_length > 1000:
            print(info.pid, info.name, info.behaviour, info.mailbox_length)

    tree = await supervision_tree("app")
    print(tree.render())
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .exceptions import CallError
from .node import current_node
from .process import Pid, Via, resolve

__all__ = ["ProcessInfo", "TreeNode", "list_processes", "process_info", "supervision_tree"]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process.

    Attributes:
        pid: the process.
        name: its registered local name, or ``None``.
        behaviour: ``"supervisor"``, ``"gen_server"`` or ``"process"``.
        module: the class behind a behaviour (``"myapp.Counter"``), or the function a plain
            process runs.
        waiting: whether it is blocked waiting for a message.
        mailbox_length: messages waiting in its mailbox.
        messages_handled: messages it has taken from its mailbox so far.
        links: the processes it is linked to.
        monitors: the processes it monitors.
        monitored_by: the processes monitoring it.
        parent: the process that started it (its supervisor, for supervised children).
        trap_exit: whether it traps exits.
    """

    pid: Pid
    name: object
    behaviour: str
    module: str
    waiting: bool
    mailbox_length: int
    messages_handled: int
    links: tuple[Pid, ...]
    monitors: tuple[Pid, ...]
    monitored_by: tuple[Pid, ...]
    parent: Pid | None
    trap_exit: bool


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One node of a supervision tree: a supervisor or a worker, with its children."""

    id: object
    pid: Pid | None
    kind: str
    module: str
    children: tuple[TreeNode, ...] = ()

    def walk(self) -> list[TreeNode]:
        """This node and every node below it, depth first, in start order."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def render(self, indent: str = "") -> str:
        """The tree as indented text, one line per node."""
        pid = repr(self.pid) if self.pid is not None else "(not running)"
        lines = [f"{indent}{self.id!s} {pid} {self.kind} {self.module}"]
        lines.extend(child.render(indent + "  ") for child in self.children)
        return "\n".join(lines)


def _kind(behaviour: object) -> str:
    if behaviour is None:
        return "process"
    return str(getattr(type(behaviour), "otp_kind", "gen_server"))


def _module(pid: Pid) -> str:
    behaviour = pid._behaviour
    if behaviour is not None:
        # A behaviour run by an internal server names the user's class as `otp_module`.
        cls = getattr(behaviour, "otp_module", None) or type(behaviour)
        return f"{cls.__module__}.{cls.__qualname__}"
    task = pid._task
    coro: Any = task.get_coro() if task is not None else None
    return str(getattr(coro, "__qualname__", "?"))


def process_info(pid: Pid) -> ProcessInfo | None:
    """A snapshot of ``pid``, or ``None`` when it is not alive."""
    if not pid._alive:
        return None
    monitoring = pid._monitoring or ()
    monitors = tuple(sorted({ref._target for ref in monitoring if ref._target is not None}))
    monitored_by = tuple(sorted(set((pid._monitors or {}).values())))
    waiter = pid._waiter
    return ProcessInfo(
        pid=pid,
        name=pid._name,
        behaviour=_kind(pid._behaviour),
        module=_module(pid),
        waiting=waiter is not None and not waiter.done(),
        mailbox_length=len(pid._mailbox or ()),
        messages_handled=pid._handled,
        links=tuple(sorted(pid._links or ())),
        monitors=monitors,
        monitored_by=monitored_by,
        parent=pid._parent,
        trap_exit=pid._trap_exit,
    )


def list_processes() -> list[ProcessInfo]:
    """A snapshot of every live process of the current node, oldest first."""
    infos = (process_info(pid) for pid in sorted(current_node().processes))
    return [info for info in infos if info is not None]


async def supervision_tree(supervisor: Pid | Via | Hashable, *, id: object = None) -> TreeNode:
    """Walk the supervision tree under ``supervisor`` (a pid or a name), asking each
    supervisor for its children.

    Only processes that are supervisors are asked (a worker whose spec says "supervisor" is
    left alone); a child supervisor that ends during the walk is shown as not running.

    Raises:
        CallError: ``supervisor`` itself is not running.
    """
    from .supervisor import which_children

    pid = resolve(supervisor)
    children = await which_children(supervisor)
    nodes = []
    for child in children:
        child_pid = child.pid
        if child_pid is not None and _kind(child_pid._behaviour) == "supervisor":
            try:
                nodes.append(await supervision_tree(child_pid, id=child.id))
            except CallError:
                nodes.append(TreeNode(child.id, None, "supervisor", _module(child_pid)))
        else:
            kind = child.type if child_pid is None else _kind(child_pid._behaviour)
            module = _module(child_pid) if child_pid is not None else "?"
            nodes.append(TreeNode(child.id, child_pid, kind, module))
    name = pid._name if pid is not None else supervisor
    module = _module(pid) if pid is not None else "?"
    return TreeNode(id if id is not None else name, pid, "supervisor", module, tuple(nodes))
