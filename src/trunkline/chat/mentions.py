"""Mentions: the ``@username``\\ s in a message body.

A mention is ``@`` followed by a username as accounts spell them (see ``validation.py``: a
letter or digit, then letters, digits, ``_``, ``.``, ``-``), not preceded by a word character
or another ``@`` (so ``ada@example.com`` mentions nobody). Trailing ``.`` and ``-`` are
punctuation (``thanks @ada.``). Matching is case-insensitive: usernames are stored in lower
case. Whether the name belongs to an account, and to a member of the room, is for the caller
to look up: the notification events go to those only.
"""

from __future__ import annotations

import re

from .validation import USERNAME_MAX, USERNAME_MIN

__all__ = ["mentions"]

_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]*)")


def mentions(body: str) -> list[str]:
    """The usernames mentioned in ``body``, lower case, each once, in order of first mention.

    Example::

        mentions("@Ada and @bob.smith, see @ada.")  # ["ada", "bob.smith"]
    """
    found: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        name = match.group(1).rstrip(".-").lower()
        if USERNAME_MIN <= len(name) <= USERNAME_MAX:
            found.setdefault(name)
    return list(found)
