"""What users may choose: usernames, passwords, display names, device names.

Each check returns the value as it is to be stored, or raises
:class:`~trunkline.chat.InvalidInput` naming the field, a code and what was expected.

- **Usernames** are normalized, then checked: NFKC (so full-width letters and the Kelvin
  sign fold to plain ones), then lower case. The result has 3 to 32 characters from
  ``a-z``, ``0-9``, ``_``, ``.`` and ``-``, begins with a letter or a digit, and is not one of
  :data:`RESERVED_USERNAMES`. Usernames are stored normalized, so ``Ada`` and ``ada`` are one
  account, and either logs in.
- **Passwords** have 8 to 1024 characters (after NFKC, as they are hashed); anything else
  goes: spaces, any script, emoji.
- **Display names** have 1 to 64 characters once surrounding white space is stripped, in NFC,
  with no control characters (tabs and newlines included).
- **Device names** (optional) follow the display names' rule, up to 64 characters.
"""

from __future__ import annotations

import re
import unicodedata

from .exceptions import InvalidInput

__all__ = [
    "DISPLAY_NAME_MAX",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "RESERVED_USERNAMES",
    "USERNAME_MAX",
    "USERNAME_MIN",
    "check_device_name",
    "check_display_name",
    "check_password",
    "normalize_username",
]

USERNAME_MIN = 3
USERNAME_MAX = 32
PASSWORD_MIN = 8
PASSWORD_MAX = 1024
DISPLAY_NAME_MAX = 64

RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "administrator",
        "all",
        "anonymous",
        "api",
        "channel",
        "everyone",
        "here",
        "moderator",
        "null",
        "owner",
        "root",
        "server",
        "staff",
        "support",
        "system",
        "trunkline",
        "undefined",
    }
)
"""Names nobody may register: they mean something to the server or in a message
(``@everyone``, ``@here``), or would pass for its staff."""

_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def normalize_username(username: object) -> str:
    """The stored form of ``username``: NFKC, lower case, checked (see the module).

    Raises:
        InvalidInput: ``field="username"``, code ``wrong_type``, ``too_short``,
            ``too_long``, ``invalid_characters`` or ``reserved``.
    """
    if not isinstance(username, str):
        raise InvalidInput("username", "wrong_type", "the username must be a string")
    name = unicodedata.normalize("NFKC", username).lower()
    if len(name) < USERNAME_MIN:
        raise InvalidInput(
            "username", "too_short", f"the username needs at least {USERNAME_MIN} characters"
        )
    if len(name) > USERNAME_MAX:
        raise InvalidInput(
            "username", "too_long", f"the username has at most {USERNAME_MAX} characters"
        )
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            "username",
            "invalid_characters",
            "the username may hold only letters a-z, digits, '_', '.' and '-', "
            "and begins with a letter or a digit",
        )
    if name in RESERVED_USERNAMES:
        raise InvalidInput("username", "reserved", f"the username {name!r} is reserved")
    return name


def check_password(password: object) -> str:
    """``password`` if acceptable (see the module).

    Raises:
        InvalidInput: ``field="password"``, code ``wrong_type``, ``too_short`` or
            ``too_long``.
    """
    if not isinstance(password, str):
        raise InvalidInput("password", "wrong_type", "the password must be a string")
    length = len(unicodedata.normalize("NFKC", password))
    if length < PASSWORD_MIN:
        raise InvalidInput(
            "password", "too_short", f"the password needs at least {PASSWORD_MIN} characters"
        )
    if length > PASSWORD_MAX:
        raise InvalidInput(
            "password", "too_long", f"the password has at most {PASSWORD_MAX} characters"
        )
    return password


def check_display_name(display_name: object, field: str = "display_name") -> str:
    """``display_name`` as stored: stripped, NFC, checked (see the module).

    Raises:
        InvalidInput: ``field`` (``"display_name"`` unless told), code ``wrong_type``,
            ``too_short``, ``too_long`` or ``control_characters``.
    """
    what = field.replace("_", " ")
    if not isinstance(display_name, str):
        raise InvalidInput(field, "wrong_type", f"the {what} must be a string")
    name = unicodedata.normalize("NFC", display_name.strip())
    if not name:
        raise InvalidInput(field, "too_short", f"the {what} needs at least 1 character")
    if len(name) > DISPLAY_NAME_MAX:
        raise InvalidInput(
            field, "too_long", f"the {what} has at most {DISPLAY_NAME_MAX} characters"
        )
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise InvalidInput(
            field, "control_characters", f"the {what} may not hold control characters"
        )
    return name


def check_device_name(device_name: object) -> str | None:
    """``device_name`` as stored (``None`` stays ``None``); the rule of display names.

    Raises:
        InvalidInput: ``field="device_name"``, as :func:`check_display_name`.
    """
    if device_name is None:
        return None
    return check_display_name(device_name, "device_name")
