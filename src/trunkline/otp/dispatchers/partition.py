"""PartitionDispatcher: each event to the consumer of the partition its hash names.

The producer has a fixed set of partitions; each consumer subscribes to one of them
(``subscribe(c, to=p, partition=2)``), and each partition has at most one consumer. Every event
goes to the partition ``hash(event)`` returns, so all events with the same key reach the same
consumer, in order.

The producer is asked for events as any consumer asks, but an event goes where its hash says:
events for a partition with no demand left (or no consumer yet) wait in that partition's queue
until it asks, so a backed-up partition holds back the others, as in GenStage. When a
partition's consumer goes away, its queued events stay for the next consumer of that partition
(GenStage drops them), and the producer is asked to make up for them for the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from .._stage_protocol import EVENTS, Subscription
from ..dispatcher import StageDispatcher

__all__ = ["PartitionDispatcher"]

log = logging.getLogger("trunkline.otp")


class _Partition:
    __slots__ = ("demand", "queue", "subscription")

    def __init__(self) -> None:
        self.subscription: Subscription | None = None
        self.demand = 0
        self.queue: list[Any] = []  # events waiting for demand; only while demand is 0


class PartitionDispatcher(StageDispatcher):
    """Routes each event to one partition, by a hash of the event.

    Args:
        partitions: how many partitions (named ``0`` to ``partitions - 1``), or their names.
        hash: ``f(event) -> partition``; default ``hash(event) % partitions``, which needs
            integer partitions. An event whose partition is unknown is logged and dropped.

    Subscription options:
        partition: the partition to consume (required).

    Raises:
        ValueError: no partitions, duplicate names, or names that are not ``0..n-1`` without
            a ``hash``.

    Example::

        def init(self, arg):
            return ProducerInit(dispatcher=PartitionDispatcher(4, hash=lambda e: e.user_id % 4))

        for n in range(4):
            await subscribe(workers[n], to=producer, partition=n)
    """

    __slots__ = ("_by_subscription", "_hash", "_partitions", "_pending", "_waiting")

    def __init__(
        self,
        partitions: int | Iterable[Hashable],
        *,
        hash: Callable[[Any], Hashable] | None = None,
    ) -> None:
        if isinstance(partitions, int) and not isinstance(partitions, bool):
            if partitions < 1:
                raise ValueError(f"partitions must be at least 1, not {partitions}")
            names: list[Hashable] = list(range(partitions))
        elif isinstance(partitions, Iterable) and not isinstance(partitions, str | bytes):
            names = list(partitions)
            if not names:
                raise ValueError("partitions must name at least one partition")
            if len(set(names)) != len(names):
                raise ValueError(f"partition names must be unique, not {names!r}")
        else:
            raise TypeError(f"partitions must be a count or a list of names, not {partitions!r}")
        if hash is None:
            if names != list(range(len(names))):
                raise ValueError(
                    f"partitions {names!r} are not 0..{len(names) - 1}: give a hash function "
                    "that returns one of them"
                )
            hash = functools.partial(_modulo, len(names))
        elif not callable(hash):
            raise TypeError(f"hash must be a function of the event, not {hash!r}")
        self._hash = hash
        self._partitions = {name: _Partition() for name in names}
        self._by_subscription: dict[Subscription, _Partition] = {}
        self._waiting = 0  # asked of the producer, not yet dispatched
        self._pending = 0  # asked of the producer for consumers that have gone since

    def subscribe(self, options: Mapping[str, Any], subscription: Subscription) -> int:
        name = options.get("partition")
        if name is None:
            raise ValueError(
                "the partition option is required to subscribe to a PartitionDispatcher"
            )
        partition = self._partitions.get(name)
        if partition is None:
            raise ValueError(f"partition must be one of {list(self._partitions)}, not {name!r}")
        if partition.subscription is not None:
            raise ValueError(
                f"partition {name!r} is already taken by {partition.subscription.consumer!r}"
            )
        partition.subscription = subscription
        self._by_subscription[subscription] = partition
        return 0

    def cancel(self, subscription: Subscription) -> int:
        partition = self._by_subscription.pop(subscription)
        partition.subscription = None
        # What it had asked for and not received, the producer still owes: do not ask twice.
        self._pending += partition.demand
        partition.demand = 0
        # Its queued events stay for the partition's next consumer; they used up demand the
        # other partitions asked for, so ask again for that much.
        queued = len(partition.queue)
        self._waiting += queued
        return queued

    def ask(self, demand: int, subscription: Subscription) -> int:
        partition = self._by_subscription[subscription]
        queue = partition.queue
        if queue and subscription.consumer._alive:
            sent = queue[:demand]
            del queue[:demand]
            subscription.consumer._deliver((EVENTS, subscription, sent))
            partition.demand += demand - len(sent)
        else:
            partition.demand += demand
        already = min(self._pending, demand)
        self._pending -= already
        demand -= already
        self._waiting += demand
        return demand

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        waiting = self._waiting
        if waiting == 0:
            return events
        if length <= waiting:
            now, later = events, []
            self._waiting = waiting - length
        else:
            now, later = events[:waiting], events[waiting:]
            self._waiting = 0
        route = self._hash
        partitions = self._partitions
        routed: dict[Hashable, list[Any]] = {}
        for event in now:
            name = route(event)
            batch = routed.get(name)
            if batch is not None:
                batch.append(event)
            elif name in partitions:
                routed[name] = [event]
            else:
                log.error(
                    "PartitionDispatcher: hash gave unknown partition %r for event %r; known "
                    "partitions are %r. The event is dropped.",
                    name,
                    event,
                    list(partitions),
                )
        for name, batch in routed.items():
            partition = partitions[name]
            subscription = partition.subscription
            demand = partition.demand
            if subscription is not None and not subscription.consumer._alive:
                # Dead, and its Down not here yet: count the events against its demand as if
                # sent, and keep them for the partition's next consumer.
                partition.demand = max(0, demand - len(batch))
                partition.queue.extend(batch)
            elif partition.queue or demand == 0 or subscription is None:
                partition.queue.extend(batch)
            elif len(batch) <= demand:
                partition.demand = demand - len(batch)
                subscription.consumer._deliver((EVENTS, subscription, batch))
            else:
                partition.demand = 0
                subscription.consumer._deliver((EVENTS, subscription, batch[:demand]))
                partition.queue.extend(batch[demand:])
        return later


def _modulo(count: int, event: Any) -> Hashable:
    return hash(event) % count
