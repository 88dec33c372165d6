"""A channel the node has no settings for: every send fails at once, saying what to set.

``trunkline serve`` offers every channel to users; one without its settings (email without
``[notify.smtp]``) is an :class:`OffChannel`, so that a user who gave an address still sees,
in the delivery's history, why nothing came - and the node starts all the same.
"""

from __future__ import annotations

from ..channel import Envelope, PermanentFailure, Rendered, Sent

__all__ = ["OffChannel"]


class OffChannel:
    """The channel ``name``, not configured: :meth:`send` raises ``PermanentFailure(why)``."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def __repr__(self) -> str:
        return f"<OffChannel {self.name}: {self.why}>"

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        raise PermanentFailure(self.why)
