"""The dispatcher behaviour: how a producer stage shares its events among its consumers.

A producer (or producer_consumer) owns one dispatcher, given in its ``init`` result
(``ProducerInit(dispatcher=BroadcastDispatcher())``). The stage tells the dispatcher about
subscriptions, cancellations and demand; the dispatcher answers with how many new events the
producer should make, and delivers the events the producer emits. trunkline ships three, in
:mod:`trunkline.otp.dispatchers`:

- :class:`~trunkline.otp.dispatchers.demand.DemandDispatcher` (the default): each batch goes to
  the consumer with the most pending demand;
- :class:`~trunkline.otp.dispatchers.broadcast.BroadcastDispatcher`: every event to every
  consumer (or to those whose ``selector`` accepts it), at the pace of the slowest;
- :class:`~trunkline.otp.dispatchers.partition.PartitionDispatcher`: each event to the one
  consumer of the partition its hash names.

Writing one: subclass :class:`StageDispatcher` and implement the four methods. They run inside
the producer's process, one at a time, so they need no locks. The one rule that makes
back-pressure work: never send a subscription more events than it has asked for and not yet
received. Events that cannot be sent now are returned from :meth:`dispatch`; the producer keeps
them in its buffer and offers them again when demand arrives.

Example, a dispatcher that sends everything to the newest consumer::

    class Newest(StageDispatcher):
        def __init__(self) -> None:
            self.subs: list[list] = []        # [demand, subscription], newest last

        def subscribe(self, options, subscription):
            self.subs.append([0, subscription])
            return 0

        def cancel(self, subscription):
            self.subs = [s for s in self.subs if s[1] is not subscription]
            return 0

        def ask(self, demand, subscription):
            for entry in self.subs:
                if entry[1] is subscription:
                    entry[0] += demand
            return demand

        def dispatch(self, events, length):
            if not self.subs or self.subs[-1][0] == 0:
                return events
            entry = self.subs[-1]
            now, later = events[: entry[0]], events[entry[0] :]
            entry[0] -= len(now)
            self.deliver(entry[1], now)
            return later
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ._stage_protocol import EVENTS, Subscription
from .process import Pid

__all__ = ["StageDispatcher"]


class StageDispatcher(ABC):
    """Base class of dispatchers; see the module documentation.

    A dispatcher instance serves one producer: create it in the producer's ``init``.
    """

    # Which producer uses this instance: a second producer may not share it.
    __slots__ = ("_producer",)
    _producer: Pid

    @abstractmethod
    def subscribe(self, options: Mapping[str, Any], subscription: Subscription) -> int:
        """A consumer subscribed; return how many new events the producer should make.

        ``options`` are the subscription's options (``max_demand``, ``min_demand``,
        ``cancel`` and any other given to ``subscribe``, such as ``partition`` or
        ``selector``). Raise to refuse the subscription (a ``ValueError`` for bad options): the
        producer then cancels it, with the exception as the reason.
        """

    @abstractmethod
    def cancel(self, subscription: Subscription) -> int:
        """A subscription ended (cancelled, or its consumer went down).

        Return how many new events the producer should make (a broadcast may now be able to
        go on). ``subscription`` is always one that :meth:`subscribe` accepted.
        """

    @abstractmethod
    def ask(self, demand: int, subscription: Subscription) -> int:
        """``subscription`` asks for ``demand`` (> 0) more events.

        Return how many new events the producer should make for it: the producer's
        ``handle_demand`` is called with that number (after its buffer has been offered).
        """

    @abstractmethod
    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        """Send ``events`` (non-empty; ``length`` of them) to consumers, within their demand.

        Return the events that could not be sent now, in order: the producer buffers them.
        Use :meth:`deliver` to send. A consumer may be dead before the producer hears of it
        (``subscription.consumer`` is then not alive); events are better kept than sent there.
        """

    @staticmethod
    def deliver(subscription: Subscription, events: list[Any]) -> None:
        """Send ``events`` (a non-empty list the consumer may keep) on ``subscription``."""
        subscription.consumer._deliver((EVENTS, subscription, events))
