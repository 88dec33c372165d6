"""The :class:`Plugin` behaviour: a process that runs beside a node's queues.

A plugin is an object with a name and a ``child_spec(jobs)``; :class:`~trunkline.jobs.Jobs`
starts each plugin it is given under its supervisor, after the notifier and the stager and
before the queues (so it stops after them). The cron and the lifeline are plugins, and so is
any periodic work a user wants to run once per node beside the queues.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from trunkline import otp

    from .jobs import Jobs

__all__ = ["Plugin"]


@runtime_checkable
class Plugin(Protocol):
    """What :class:`~trunkline.jobs.Jobs` needs of a plugin.

    Attributes:
        name: the plugin's child id in the node's tree; unique among its plugins.
    """

    name: str

    def child_spec(self, jobs: Jobs) -> otp.ChildSpec:
        """The plugin's process (or tree) for ``jobs``' supervisor."""
        ...
