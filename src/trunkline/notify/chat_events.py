"""The chat's events as notifications: the offline hook of ``trunkline serve``.

A direct message or an ``@mention`` for a member with no connected device (a
:class:`~trunkline.chat.offline.OfflineRecipient`) becomes one event::

    notifier.send(
        "chat.direct_message" | "chat.mention", [recipient],
        actor=sender,
        payload={"room": id, "room_name": ..., "seq": n, "sender": id, "sender_name": ...,
                 "text": the body's first 280 characters, "url": the room in the web page},
        idempotency_key=f"chat:{room}:{seq}:{user}",
    )

so a message seen twice (a retried send, two nodes) is one notification. A member who is
connected gets nothing from here: their client shows the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from trunkline import chat, db

from .exceptions import NotifyError

if TYPE_CHECKING:
    from trunkline.chat.offline import OfflineRecipient

    from .notifier import Notifier

__all__ = ["CATEGORIES", "EXCERPT_CHARS", "ChatNotifications"]

log = logging.getLogger("trunkline.notify")

CATEGORIES = {"direct": "chat.direct_message", "mention": "chat.mention"}
"""The category of each reason an offline recipient has."""

EXCERPT_CHARS = 280
"""How much of a message's body a notification carries."""


class ChatNotifications:
    """The hook to put in ``ChatTree.offline_hooks``.

    Args:
        notifier: gives the node's :class:`~trunkline.notify.Notifier` (``None`` while it is
            not started: the recipient is then skipped, and logged).
        page_url: gives the chat page's URL; links to a room are
            ``{page_url}/#/room/{id}``.
    """

    def __init__(
        self, notifier: Callable[[], Notifier | None], page_url: Callable[[], str]
    ) -> None:
        self._notifier = notifier
        self._page_url = page_url

    async def __call__(self, recipient: OfflineRecipient) -> None:
        notifier = self._notifier()
        category = CATEGORIES[recipient.reason]
        if notifier is None or category not in notifier.config.categories:
            log.info("no notification of %s for user %d", category, recipient.user_id)
            return
        try:
            await self._send(notifier, category, recipient)
        except (db.DatabaseError, NotifyError, chat.ChatError) as error:
            log.warning(
                "could not notify user %d of message %d in room %d: %s",
                recipient.user_id,
                recipient.seq,
                recipient.room_id,
                error,
            )

    async def _send(self, notifier: Notifier, category: str, recipient: OfflineRecipient) -> None:
        database = notifier.database
        room = await chat.get_room(database, recipient.room_id)
        sender = (await chat.get_users(database, [recipient.sender_id])).get(recipient.sender_id)
        sender_name = sender.display_name if sender is not None else "someone"
        body = recipient.message.body
        excerpt = body if len(body) <= EXCERPT_CHARS else body[: EXCERPT_CHARS - 1] + "…"
        await notifier.send(
            category,
            [recipient.user_id],
            actor=recipient.sender_id,
            payload={
                "room": room.id,
                "room_name": room.name or sender_name,
                "seq": recipient.seq,
                "sender": recipient.sender_id,
                "sender_name": sender_name,
                "text": excerpt,
                "url": f"{self._page_url().rstrip('/')}/#/room/{room.id}",
            },
            idempotency_key=f"chat:{room.id}:{recipient.seq}:{recipient.user_id}",
        )
