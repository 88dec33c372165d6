"""Every error of :mod:`trunkline.notify`, under one root: :class:`NotifyError`.

The failures of a send (:class:`~trunkline.notify.channel.TransientFailure` and the others)
live in ``channel.py``: they are what a channel raises, not what callers of the pipeline see.
"""

from __future__ import annotations

__all__ = [
    "InvalidConfig",
    "InvalidNotification",
    "InvalidToken",
    "NotifyError",
    "TemplateMissing",
    "UnknownCategory",
]


class NotifyError(Exception):
    """The root of the notification system's errors."""


class InvalidConfig(NotifyError, ValueError):
    """Raised when a :class:`~trunkline.notify.NotifyConfig` or a :class:`Notifier` is made
    with an invalid option; the message names the option."""


class InvalidNotification(NotifyError, ValueError):
    """Raised by ``Notifier.send`` and the settings functions for bad input (empty
    recipients, a payload that is not JSON, a naive ``send_at``, an unknown time zone...);
    nothing is stored."""


class UnknownCategory(InvalidNotification, LookupError):
    """Raised when a category is not one of the configuration's; nothing is stored."""


class TemplateMissing(NotifyError, LookupError):
    """Raised when the :class:`~trunkline.notify.Notifier` is made and a configured
    category x channel has no template (in the fallback locale) for a part its channel
    needs."""


class InvalidToken(NotifyError, ValueError):
    """Raised by :func:`~trunkline.notify.unsubscribe` for a malformed or forged token;
    nothing is changed."""
