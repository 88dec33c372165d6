"""Messages for people who are not there: the events the notification system consumes.

When a room stores a new message, the members it is *for* who have no connected device get
an :class:`OfflineRecipient` each:

- in a direct room, the other member (``reason="direct"``);
- in any room, each member mentioned by ``@username`` (``reason="mention"``), the sender
  excepted; a name that is no member's mentions nobody.

Each is emitted as the telemetry event :data:`OFFLINE_EVENT` (metadata: ``user_id``,
``room_id``, ``seq``, ``reason``, ``sender_id``) and passed to every hook in the chat tree's
``offline_hooks`` (a function of the recipient, plain or async; a hook that raises is logged
and the others still run). The work runs in a process of its own after the sender's
acknowledgement, so neither the ack nor the room's next message waits for it, and a retried
send (a duplicate) raises nothing again.

"Connected" is the tree's presence (``ChatTree.is_connected``): a device connected to any
node the tree's PubSub reaches.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trunkline import db, otp

from .mentions import mentions
from .messages import Message

if TYPE_CHECKING:
    from .tree import ChatTree

__all__ = [
    "OFFLINE_EVENT",
    "OfflineHook",
    "OfflineRecipient",
    "notify_offline",
    "offline_recipients",
    "wanted",
]

log = logging.getLogger("trunkline.chat")

OFFLINE_EVENT = ("trunkline", "chat", "offline_recipient")
"""Emitted once per member a new message is for who has no connected device."""

_MEMBERS = db.Query(
    "chat.offline.members",
    "SELECT u.id, u.username FROM chat_room_members AS m "
    "JOIN chat_users AS u ON u.id = m.user_id WHERE m.room_id = $1",
)


@dataclass(frozen=True, slots=True)
class OfflineRecipient:
    """A member a new message is for, who has no connected device.

    Attributes:
        user_id: the member.
        room_id: the room.
        seq: the message's sequence number in the room.
        reason: ``"direct"`` (a direct message) or ``"mention"`` (``@username``).
        sender_id: who sent it.
        message: the stored message.
    """

    user_id: int
    room_id: int
    seq: int
    reason: Literal["direct", "mention"]
    sender_id: int
    message: Message


OfflineHook = Callable[[OfflineRecipient], Awaitable[None] | None]
"""What ``ChatTree.offline_hooks`` hold."""


async def offline_recipients(
    database: db.Queryable, tree: ChatTree, message: Message, *, direct: bool
) -> list[OfflineRecipient]:
    """The members ``message`` is for who have no connected device (see the module
    documentation): one query, none for a message of a group room that mentions nobody.

    Args:
        direct: whether the message's room is a direct room.
    """
    named = mentions(message.body)
    if not direct and not named:
        return []
    sender = message.sender_id
    members = [(row[0], row[1]) for row in await database.fetch(_MEMBERS, message.room_id)]
    found: dict[int, Literal["direct", "mention"]] = {}
    if direct:
        found.update((user_id, "direct") for user_id, _ in members if user_id != sender)
    by_name = {username: user_id for user_id, username in members}
    for name in named:
        user_id = by_name.get(name)
        if user_id is not None and user_id != sender:
            found.setdefault(user_id, "mention")
    return [
        OfflineRecipient(user_id, message.room_id, message.seq, reason, sender, message)
        for user_id, reason in found.items()
        if not tree.is_connected(user_id)
    ]


def wanted(tree: ChatTree) -> bool:
    """Whether anybody listens: a hook, or a handler of :data:`OFFLINE_EVENT`."""
    return bool(tree.offline_hooks) or otp.telemetry.has_handlers(OFFLINE_EVENT)


async def notify_offline(tree: ChatTree, message: Message, direct: bool) -> None:
    """Emit the events of ``message`` and call the hooks: the body of the process a room
    spawns after acknowledging a new message."""
    try:
        recipients = await offline_recipients(tree.require_database(), tree, message, direct=direct)
    except db.DatabaseError as error:
        log.warning(
            "room %d: could not look for the offline recipients of message %d: %s",
            message.room_id,
            message.seq,
            error,
        )
        return
    for recipient in recipients:
        otp.telemetry.execute(
            OFFLINE_EVENT,
            {"count": 1},
            {
                "user_id": recipient.user_id,
                "room_id": recipient.room_id,
                "seq": recipient.seq,
                "reason": recipient.reason,
                "sender_id": recipient.sender_id,
            },
        )
        for hook in tree.offline_hooks:
            try:
                result = hook(recipient)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("an offline-recipient hook failed for %r", recipient)
