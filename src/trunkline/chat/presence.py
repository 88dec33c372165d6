"""Who is online: per user (any device connected) and per room (members with the room open).

Built on the runtime's :class:`~trunkline.otp.Presence` (``tree.presence``), so it holds
across the nodes of the tree's PubSub. A connection process tracks itself:

- on ``auth``, on the topic :data:`USERS_TOPIC` under its user id: a user is **online** while
  any of their devices has a connection, anywhere; otherwise they were **last seen** when
  their last socket closed (the device's ``last_seen_at``, written then);
- on ``join``, on the room's topic ``room:<id>`` under its user id, until it leaves the room
  or ends: the room's **presence** is the members with the room open, and how many devices
  each has there.

Diffs are the Presence's: at most one per room per ``limits.presence_interval_s``, the net
change since the last one, so a thousand members reconnecting within an interval are one
push to each member, not a thousand - and a member who drops and comes back within it is no
push at all. They reach sockets the way a room's messages do (``pushes.py``): encoded once,
written straight to each joined connection's socket, no process woken::

    {"type": "presence", "room": 12, "joins": {"7": {"devices": 2}},
     "leaves": {"9": {"last_seen_at": "2026-11-28T14:02:11+00:00"}}, "server_time": "..."}

Keys are user ids as strings (JSON's object keys). A client keeps the ``join`` reply's
``presence`` map, adds each diff's ``joins`` and removes its ``leaves``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trunkline import db, otp

from .accounts import last_seen
from .protocol import encode

if TYPE_CHECKING:
    from .tree import ChatTree

__all__ = [
    "USERS_TOPIC",
    "UserPresence",
    "encode_diff",
    "is_online",
    "room_presence",
    "track_room",
    "track_user",
    "untrack_room",
    "users_presence",
]

USERS_TOPIC = "users"
"""The Presence topic on which every authenticated connection is tracked by user id."""


@dataclass(frozen=True, slots=True)
class UserPresence:
    """A user's presence: ``online`` (with ``devices`` connected), else ``last_seen_at`` (or
    ``None`` for a user never seen)."""

    user_id: int
    online: bool
    devices: int
    last_seen_at: datetime | None


# A presence's meta is the device id alone: one int per entry, not a dict, for 10,000s.


def track_user(tree: ChatTree, pid: otp.Pid, user_id: int, device_id: int) -> None:
    """Count the connection process ``pid`` as one of ``user_id``'s connected devices."""
    tree.presence.track(pid, USERS_TOPIC, user_id, device_id)


def track_room(tree: ChatTree, topic: str, pid: otp.Pid, user_id: int, device_id: int) -> None:
    """Count the connection process ``pid`` as ``user_id`` having the room of ``topic`` open."""
    tree.presence.track(pid, topic, user_id, device_id)


def untrack_room(tree: ChatTree, topic: str, pid: otp.Pid, user_id: int) -> None:
    """The connection process ``pid`` has left the room of ``topic``."""
    tree.presence.untrack(pid, topic, user_id)


def is_online(tree: ChatTree, user_id: int) -> bool:
    """Whether ``user_id`` has a connection on any node the tree's PubSub reaches."""
    return bool(tree.presence.get(USERS_TOPIC, user_id))


def room_presence(tree: ChatTree, topic: str) -> dict[str, dict[str, int]]:
    """The room's presence as the protocol shows it: ``{"<user id>": {"devices": n}}``."""
    return {str(key): {"devices": len(metas)} for key, metas in tree.presence.list(topic).items()}


async def users_presence(
    tree: ChatTree, database: db.Queryable, user_ids: Iterable[int]
) -> dict[int, UserPresence]:
    """The presence of each of ``user_ids``; those offline are read from the database (one
    query for all of them)."""
    presence = tree.presence
    found: dict[int, UserPresence] = {}
    offline: list[int] = []
    for user_id in dict.fromkeys(user_ids):
        devices = len(presence.get(USERS_TOPIC, user_id))
        if devices:
            found[user_id] = UserPresence(user_id, True, devices, None)
        else:
            offline.append(user_id)
    seen = await last_seen(database, offline) if offline else {}
    for user_id in offline:
        found[user_id] = UserPresence(user_id, False, 0, seen.get(user_id))
    return found


def encode_diff(
    room_id: int, joins: dict[Hashable, list[Any]], leaves: dict[Hashable, Any], now: datetime
) -> str:
    """The ``presence`` push of a room's diff (see the module). A member who left is shown
    as last seen now, when the diff is sent."""
    at = now.isoformat()
    return encode(
        {
            "type": "presence",
            "room": room_id,
            "joins": {str(key): {"devices": len(metas)} for key, metas in joins.items()},
            "leaves": {str(key): {"last_seen_at": at} for key in leaves},
            "server_time": at,
        }
    )
