"""Channels kept open for a node's life: a :class:`~trunkline.jobs.Plugin` that owns them.

A channel with ``open()`` and ``aclose()`` (``WebhookChannel``, ``WebPushChannel``: their
kept-alive connections) sends faster open, but something must close it, after the last
delivery. Given to the node's :class:`~trunkline.jobs.Jobs` as a plugin,
:class:`OpenChannels` opens them when its process starts and closes them when it stops: the
node's supervisor starts plugins before the queues and stops them after, so no delivery runs
on a closed channel, and a restarted tree opens them again. Channels without the two methods
are left as they are.

    node = jobs.Jobs(database, registry=registry, queues={"notify": 100},
                     plugins=[notify.OpenChannels(notifier.channels.values())])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from trunkline import otp

from .channel import Channel

if TYPE_CHECKING:
    from trunkline.jobs import Jobs

__all__ = ["OpenChannels"]

log = logging.getLogger("trunkline.notify")


class OpenChannels:
    """A plugin keeping ``channels`` open while the node's queues run; see the module
    documentation."""

    def __init__(self, channels: Iterable[Channel], *, name: str = "notify.channels") -> None:
        self.name = name
        self.channels = [channel for channel in channels if _opens(channel)]

    def child_spec(self, jobs: Jobs) -> otp.ChildSpec:
        """The process that opens and closes the channels, for ``jobs``' supervisor."""
        return otp.child_spec(
            _Keeper, self.channels, id=self.name, name=otp.Via(jobs.names, ("plugin", self.name))
        )


def _opens(channel: Channel) -> bool:
    return callable(getattr(channel, "open", None)) and callable(getattr(channel, "aclose", None))


class _Keeper(otp.GenServer):
    trap_exit = True  # so that a shutdown runs terminate, which closes them

    def init(self, channels: list[Any]) -> None:
        self.channels = channels
        for channel in channels:
            channel.open()

    async def terminate(self, reason: Any) -> None:
        for channel in self.channels:
            try:
                await channel.aclose()
            except Exception:  # one channel's failure must not leave the others open
                log.exception("could not close the %r channel", channel.name)
