"""Every error of the chat server, under one root: :class:`ChatError`.

Each says when it is raised. The web layer turns them into replies: :class:`InvalidInput`
carries a ``field`` and a ``code`` a client can act on, :class:`TooManyAttempts` carries
``retry_after_s``.

::

    ChatError
    ├── InvalidInput            (also a ValueError)
    ├── UsernameTaken
    ├── InvalidCredentials
    ├── InvalidToken
    ├── NotFound                (also a LookupError)
    ├── TooManyAttempts
    ├── NotMember
    ├── Forbidden
    ├── Banned
    └── Muted
"""

from __future__ import annotations

import math
from datetime import datetime

__all__ = [
    "Banned",
    "ChatError",
    "Forbidden",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidToken",
    "Muted",
    "NotFound",
    "NotMember",
    "TooManyAttempts",
    "UsernameTaken",
]


class ChatError(Exception):
    """The root of every error of ``trunkline.chat``."""


class InvalidInput(ChatError, ValueError):
    """A value given by a user is not acceptable: raised before anything is written.

    Attributes:
        field: the field at fault, as the API names it: ``"username"``, ``"password"``,
            ``"display_name"``, ``"device_name"``...
        code: what is wrong, for programs: ``"too_short"``, ``"too_long"``,
            ``"invalid_characters"``, ``"reserved"``, ``"control_characters"``,
            ``"wrong_type"``...
        message: what is wrong, for people (also ``str(error)``).
    """

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"InvalidInput(field={self.field!r}, code={self.code!r}, message={self.message!r})"


class UsernameTaken(ChatError):
    """Raised by ``register`` when the (normalized) username belongs to an account already.

    Attributes:
        username: the normalized username.
    """

    def __init__(self, username: str) -> None:
        super().__init__(f"the username {username!r} is taken")
        self.username = username


class InvalidCredentials(ChatError):
    """Raised by ``login`` for a wrong password and for a username with no account alike:
    the error, its message and its timing do not tell which."""

    def __init__(self) -> None:
        super().__init__("wrong username or password")


class InvalidToken(ChatError):
    """Raised by ``authenticate`` and ``logout`` for a token that is unknown, expired or
    revoked.

    Attributes:
        reason: ``"unknown"``, ``"expired"`` or ``"revoked"``. Only the holder of the token
            learns it, so a client can say "your session expired" rather than "invalid".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token ({reason})")
        self.reason = reason


class NotFound(ChatError, LookupError):
    """The thing asked for does not exist, or is not the asker's (the two are not told
    apart): a device of another user, a user id with no account.

    Attributes:
        what: ``"device"``, ``"user"``...
        key: what it was looked up by.
    """

    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"no such {what}: {key!r}")
        self.what = what
        self.key = key


class TooManyAttempts(ChatError):
    """Raised by ``login`` when the account or the address has failed to log in too often
    recently (see :class:`~trunkline.chat.LoginLimiter`); nothing was checked.

    Attributes:
        retry_after_s: seconds until an attempt is allowed again (> 0).
        scope: ``"account"`` or ``"address"``: which limit was hit.
    """

    def __init__(self, scope: str, retry_after_s: float) -> None:
        super().__init__(
            f"too many failed logins for this {scope}: try again in {math.ceil(retry_after_s)} s"
        )
        self.scope = scope
        self.retry_after_s = retry_after_s


class NotMember(ChatError):
    """Raised when a user acts in a room they do not belong to (send, edit, read marker,
    moderation, search scoped to the room), or is acted on there but is not in it (kick,
    mute).

    Attributes:
        room_id: the room.
        user_id: the user who is not a member.
    """

    def __init__(self, room_id: int, user_id: int) -> None:
        super().__init__(f"user {user_id} is not a member of room {room_id}")
        self.room_id = room_id
        self.user_id = user_id


class Forbidden(ChatError):
    """Raised when a member may not do what they ask: moderate without being owner or admin,
    act on themselves, an owner or (as an admin) another admin, join a private room uninvited,
    edit someone else's message.

    Attributes:
        action: what was refused: ``"ban"``, ``"join"``, ``"edit"``...
        reason: why, for people (also in ``str(error)``).
    """

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} forbidden: {reason}")
        self.action = action
        self.reason = reason


class Banned(ChatError):
    """Raised by ``join`` and ``invite`` for a user banned from the room.

    Attributes:
        room_id: the room.
        user_id: the banned user.
        until: when the ban ends (an aware ``datetime``), or ``None`` for a ban without end.
    """

    def __init__(self, room_id: int, user_id: int, until: datetime | None) -> None:
        end = "" if until is None else f" until {until.isoformat()}"
        super().__init__(f"user {user_id} is banned from room {room_id}{end}")
        self.room_id = room_id
        self.user_id = user_id
        self.until = until


class Muted(ChatError):
    """Raised by ``append`` and ``edit_message`` for a member muted in the room.

    Attributes:
        room_id: the room.
        user_id: the muted member.
        until: when the mute ends (an aware ``datetime``), or ``None`` for a mute without end.
    """

    def __init__(self, room_id: int, user_id: int, until: datetime | None) -> None:
        end = "" if until is None else f" until {until.isoformat()}"
        super().__init__(f"user {user_id} is muted in room {room_id}{end}")
        self.room_id = room_id
        self.user_id = user_id
        self.until = until
