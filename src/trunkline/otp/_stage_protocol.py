"""The messages stages exchange, and the subscription they are about.

Shared by :mod:`~trunkline.otp.stage` (the behaviour and its process), the dispatchers and the
stream helper. GenStage's protocol, with Python's shapes:

consumer -> producer
    ``(SUBSCRIBE, subscription, options)``: start a subscription (the consumer monitors the
    producer first; the producer then monitors the consumer).
    ``(ASK, subscription, n)``: n more events may be sent on this subscription.
    ``(CANCEL, subscription, reason)``: end it; the producer confirms with ``CANCELLED``.

producer -> consumer
    ``(EVENTS, subscription, events)``: a non-empty list, never more than was asked for.
    ``(CANCELLED, subscription, reason)``: the subscription is over.

anyone -> stage
    calls and casts headed by ``REQUEST``: ``subscribe``, ``buffered_count``, ``demand``.

Every message is a 3-tuple headed by a private tag: the cheapest thing to build and to test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from .gen_server import _Tag
from .process import Pid, Ref

__all__ = [
    "ASK",
    "CANCEL",
    "CANCELLED",
    "EVENTS",
    "REQUEST",
    "SUBSCRIBE",
    "CancelMode",
    "Subscription",
    "check_producer",
    "subscription_options",
]

CancelMode: TypeAlias = Literal["permanent", "transient", "temporary"]

_CANCEL_MODES = ("permanent", "transient", "temporary")


SUBSCRIBE = _Tag("$stage_subscribe")
ASK = _Tag("$stage_ask")
CANCEL = _Tag("$stage_cancel")
EVENTS = _Tag("$stage_events")
CANCELLED = _Tag("$stage_cancelled")
# Heads the calls and casts the stage functions send: ``(REQUEST, "subscribe", to, options)``.
REQUEST = _Tag("$stage_request")


class Subscription:
    """One consumer's subscription to one producer: what ``subscribe`` returns.

    Both sides hold the same object: a consumer gets it as ``from_`` in ``handle_events``, a
    producer in ``handle_subscribe`` and ``handle_cancel``, a dispatcher in every callback. Pass
    it to :func:`~trunkline.otp.stage.ask` and :func:`~trunkline.otp.stage.cancel`.
    Subscriptions compare and hash by identity.

    Attributes:
        producer: the producer's pid.
        consumer: the consumer's pid.
        ref: the consumer's monitor of the producer; unique to this subscription.
    """

    __slots__ = ("consumer", "producer", "ref")

    def __init__(self, producer: Pid, consumer: Pid, ref: Ref) -> None:
        self.producer = producer
        self.consumer = consumer
        self.ref = ref

    def __repr__(self) -> str:
        return f"<Subscription {self.consumer!r} -> {self.producer!r} {self.ref!r}>"


def check_producer(to: Any) -> None:
    """Raise ``TypeError`` unless ``to`` can name a process (a pid, a ``Via``, a hashable)."""
    try:
        hash(to)
    except TypeError:
        raise TypeError(f"a producer is a pid, a name or a Via, not {to!r}") from None


def subscription_options(
    options: Mapping[str, Any], *, default_cancel: CancelMode = "permanent"
) -> dict[str, Any]:
    """Validate a subscription's options and fill in the defaults.

    ``max_demand`` (default 1000), ``min_demand`` (default half of it) and ``cancel`` (default
    ``default_cancel``) are checked; any other option is for the producer and its dispatcher.

    Raises:
        TypeError: ``options`` is not a mapping, or an option has the wrong type.
        ValueError: an option is out of range; the message names it.
    """
    if not isinstance(options, Mapping):
        raise TypeError(f"subscription options must be a mapping, not {options!r}")
    resolved = dict(options)
    max_demand = resolved.setdefault("max_demand", 1000)
    if type(max_demand) is not int or max_demand < 1:
        raise ValueError(f"max_demand must be an integer >= 1, not {max_demand!r}")
    min_demand = resolved.get("min_demand")
    if min_demand is None:
        min_demand = resolved["min_demand"] = max_demand // 2
    if type(min_demand) is not int or not 0 <= min_demand < max_demand:
        raise ValueError(
            f"min_demand must be an integer from 0 to max_demand - 1 ({max_demand - 1}), "
            f"not {min_demand!r}"
        )
    cancel = resolved.setdefault("cancel", default_cancel)
    if cancel not in _CANCEL_MODES:
        raise ValueError(f"cancel must be 'permanent', 'transient' or 'temporary', not {cancel!r}")
    return resolved
