"""BroadcastDispatcher: every event to every consumer, at the pace of the slowest.

Demand is sent upstream only when every consumer has asked for it: the producer is asked for
the smallest demand pending among its consumers, so no consumer ever gets more than it asked
for. A consumer may subscribe with a ``selector``, a function of the event that returns true
for the events it wants; the events it does not want count as received (the producer is asked
to make up for them), so a selective consumer does not hold the others back.

A consumer that subscribes while events asked for before it came are on their way gets them
too, but only as it asks: until it has, they wait in the producer's buffer (GenStage sends them
at once, beyond its demand). A consumer may subscribe to a broadcasting producer once: a second
subscription is cancelled with a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._stage_protocol import ASK, EVENTS, Subscription
from ..dispatcher import StageDispatcher
from ..process import Pid

__all__ = ["BroadcastDispatcher"]


class BroadcastDispatcher(StageDispatcher):
    """Sends every event to every consumer (filtered by each one's ``selector``, if any).

    Subscription options:
        selector: ``f(event) -> bool``; only the events for which it is true are sent.

    Example::

        class Announcer(Stage):
            def init(self, arg):
                return ProducerInit(dispatcher=BroadcastDispatcher())

        await subscribe(audit, to=announcer, selector=lambda e: e["kind"] == "login")
    """

    __slots__ = ("_demands", "_pids", "_waiting")

    def __init__(self) -> None:
        # [demand beyond `_waiting`, subscription, selector]: the smallest is always 0, as
        # everything all consumers have in common has been asked of the producer already.
        self._demands: list[list[Any]] = []
        self._waiting = 0  # asked of the producer, not yet broadcast
        self._pids: set[Pid] = set()

    def subscribe(self, options: Mapping[str, Any], subscription: Subscription) -> int:
        selector = options.get("selector")
        if selector is not None and not callable(selector):
            raise ValueError(f"selector must be a function of the event, not {selector!r}")
        consumer = subscription.consumer
        if consumer in self._pids:
            raise ValueError(f"{consumer!r} is already subscribed to this broadcast")
        self._pids.add(consumer)
        # Whatever is on its way was asked for without it: it has to ask for that much first.
        self._demands.append([-self._waiting, subscription, selector])
        return 0

    def cancel(self, subscription: Subscription) -> int:
        demands = self._demands
        for i, entry in enumerate(demands):
            if entry[1] is subscription:
                del demands[i]
                break
        self._pids.discard(subscription.consumer)
        if not demands:
            # Whatever comes now goes to the producer's buffer, to be offered to new demand.
            self._waiting = 0
            return 0
        return self._release()  # it may have been the one holding the others back

    def ask(self, demand: int, subscription: Subscription) -> int:
        for entry in self._demands:
            if entry[1] is subscription:
                entry[0] += demand
                break
        return self._release()

    def _release(self) -> int:
        """Move what every consumer has asked for into ``_waiting``; return that much."""
        demands = self._demands
        common: int = min(entry[0] for entry in demands)
        if common <= 0:
            return 0
        for entry in demands:
            entry[0] -= common
        self._waiting += common
        return common

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        waiting = self._waiting
        demands = self._demands
        live = [entry for entry in demands if entry[1].consumer._alive]
        if waiting == 0 or not live:
            return events
        # A consumer that came after these events were asked for may have asked for fewer:
        # the broadcast goes out only as far as everyone has asked; the rest waits.
        lowest: int = min(entry[0] for entry in live)
        room = waiting + lowest if lowest < 0 else waiting
        if room <= 0:
            return events
        taken = min(length, waiting)  # what the producer was asked for
        count = min(taken, room)  # what goes out now
        if count == length:
            now, later = events, []
        else:
            now, later = events[:count], events[count:]
        self._waiting = waiting - taken
        held = taken - count
        if held:
            # Held back for the latecomer, these go to the buffer, and out again as consumers
            # ask: everyone's demand beyond `_waiting` is that much larger meanwhile.
            for entry in demands:
                entry[0] += held
        shared = True  # the first plain consumer gets `now` itself, the others a copy
        for _, subscription, selector in live:
            if selector is None:
                batch = now if shared else now.copy()
                shared = False
            else:
                batch = [event for event in now if selector(event)]
                discarded = count - len(batch)
                if discarded:
                    # It did not want those: ask on its behalf, through the producer's mailbox
                    # like any ask, so that the producer makes up for them.
                    subscription.producer._deliver((ASK, subscription, discarded))
            if batch:
                subscription.consumer._deliver((EVENTS, subscription, batch))
        return later
