"""The in-app inbox, live: each item stored is pushed at once to its user's open sockets.

:class:`LiveInboxChannel` is the :class:`~trunkline.notify.InboxChannel` of ``trunkline
serve``: after storing an item it writes the chat push

.. code-block:: json

    {"type": "notification", "item": {"id": 12, "title": "...", "body": "...", "data": {...},
     "created_at": "...", "read_at": null}, "unread": 3}

to every authenticated chat socket of the user on this node
(:func:`trunkline.chat.pushes.push_to_user`), with the user's unread count after it. A
push is a courtesy: the item is stored whether or not anybody is connected, and a client
reads the inbox over HTTP when it (re)connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trunkline import db
from trunkline.chat.pushes import push_to_user

from .channel import Envelope, Rendered, Sent
from .inbox import InboxChannel, InboxItem, list_inbox, unread_count

if TYPE_CHECKING:
    from trunkline.chat.tree import ChatTree

__all__ = ["NOTIFICATION_PUSH", "LiveInboxChannel", "item_json"]

NOTIFICATION_PUSH = "notification"
"""The ``type`` of the push."""


def item_json(item: InboxItem) -> dict[str, Any]:
    """An inbox item as the push (and the HTTP API) shows it."""
    return {
        "id": item.id,
        "title": item.title,
        "body": item.body,
        "data": dict(item.data),
        "created_at": item.created_at.isoformat(),
        "read_at": None if item.read_at is None else item.read_at.isoformat(),
        "archived_at": None if item.archived_at is None else item.archived_at.isoformat(),
    }


class LiveInboxChannel(InboxChannel):
    """The in-app channel, pushing each new item to the user's sockets on ``tree``'s node."""

    def __init__(self, database: db.Database, tree: ChatTree) -> None:
        super().__init__(database)
        self.tree = tree

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        sent = await super().send(envelope, message)
        if self.tree.sockets.of(envelope.user_id):
            await self._push(envelope.user_id, int(sent.provider_id or 0))
        return sent

    async def _push(self, user_id: int, item_id: int) -> None:
        page = await list_inbox(self.database, user_id, cursor=item_id + 1, limit=1)
        if not page.items or page.items[0].id != item_id:
            return  # archived already, or not this user's: nothing new to show
        unread = await unread_count(self.database, user_id)
        frame = {"type": NOTIFICATION_PUSH, "item": item_json(page.items[0]), "unread": unread}
        push_to_user(self.tree, user_id, frame)
