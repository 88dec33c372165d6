"""DemandDispatcher: each batch goes to the consumer with the most pending demand.

The default dispatcher, as GenStage's. Consumers are kept in order of pending demand, the
oldest first among equals; a batch is sent whole to the first one that can take it, or split
down the line. Give every consumer the same ``max_demand``: one that asks for more than the
others gets more than its share (a warning is logged when an ask exceeds the first one seen).

When a consumer goes away with demand pending, the producer has already been asked for those
events: the next asks from other consumers are reduced by that much, so the producer is not
asked twice for the same events. A consumer that has died is skipped at once, before its
``Down`` reaches the producer, so no event is sent to a dead process.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from .._stage_protocol import EVENTS, Subscription
from ..dispatcher import StageDispatcher

__all__ = ["DemandDispatcher"]

log = logging.getLogger("trunkline.otp")


class DemandDispatcher(StageDispatcher):
    """Sends each batch of events to the consumer with the most pending demand.

    Args:
        shuffle_demands_on_first_dispatch: shuffle consumers of equal demand before the first
            dispatch, so that the first to subscribe is not always the first served.
        max_demand: the largest ask expected; defaults to the first ask seen.
    """

    __slots__ = ("_demands", "_max_demand", "_pending", "_shuffle")

    def __init__(
        self, *, shuffle_demands_on_first_dispatch: bool = False, max_demand: int | None = None
    ) -> None:
        if max_demand is not None and (type(max_demand) is not int or max_demand < 1):
            raise ValueError(f"max_demand must be None or an integer >= 1, not {max_demand!r}")
        # [pending demand, subscription], most demand first, oldest first among equals.
        self._demands: list[list[Any]] = []
        self._pending = 0  # asked of the producer for consumers that have gone since
        self._max_demand = max_demand
        self._shuffle = shuffle_demands_on_first_dispatch

    def subscribe(self, options: Mapping[str, Any], subscription: Subscription) -> int:
        self._demands.append([0, subscription])
        return 0

    def cancel(self, subscription: Subscription) -> int:
        self._pending += _pop(self._demands, subscription)[0]
        return 0

    def ask(self, demand: int, subscription: Subscription) -> int:
        max_demand = self._max_demand
        if max_demand is None:
            max_demand = self._max_demand = demand
        elif demand > max_demand:
            log.warning(
                "DemandDispatcher expects a maximum demand of %d; %r asked for %d. Consumers "
                "with different maximum demands overload the greedy ones.",
                max_demand,
                subscription.consumer,
                demand,
            )
        entry = _pop(self._demands, subscription)
        entry[0] += demand
        _insert(self._demands, entry)
        already = min(self._pending, demand)
        self._pending -= already
        return demand - already

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        demands = self._demands
        if self._shuffle:
            self._shuffle = False
            random.shuffle(demands)
            demands.sort(key=_by_demand, reverse=True)  # stable: only ties stay shuffled
        while length:
            entry = None
            i = 0
            # Ordered by demand: once one has none, nobody after it has any either.
            while i < len(demands) and demands[i][0]:
                candidate = demands[i]
                if candidate[1].consumer._alive:
                    entry = demands.pop(i)
                    break
                # Dead, its Down not handled yet: what the producer was asked for it is owed
                # to nobody now. Count it as pending at once, or a live consumer's next ask
                # would be met from the buffer and again cancelled by it when the Down comes.
                self._pending += candidate[0]
                candidate[0] = 0
                demands.append(demands.pop(i))
            if entry is None:
                break
            counter, subscription = entry
            if length <= counter:
                subscription.consumer._deliver((EVENTS, subscription, events))
                entry[0] = counter - length
                events, length = [], 0
            else:
                subscription.consumer._deliver((EVENTS, subscription, events[:counter]))
                events = events[counter:]
                length -= counter
                entry[0] = 0
            _insert(demands, entry)
        return events


def _by_demand(entry: list[Any]) -> int:
    counter: int = entry[0]
    return counter


def _insert(demands: list[list[Any]], entry: list[Any]) -> None:
    counter = entry[0]
    for i, other in enumerate(demands):
        if counter > other[0]:
            demands.insert(i, entry)
            return
    demands.append(entry)


def _pop(demands: list[list[Any]], subscription: Subscription) -> list[Any]:
    for i, entry in enumerate(demands):
        if entry[1] is subscription:
            return demands.pop(i)
    raise KeyError(subscription)  # the stage only passes subscriptions it has subscribed
