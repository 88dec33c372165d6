"""``stage_stream``: consume producers from an ``async for``, as GenStage.stream.

The iterating task is the consumer: it becomes a process, subscribes with its own pid, and
takes the protocol messages for its subscriptions from its mailbox with a selective receive,
leaving every other message where it is. Demand is sent as batches are consumed, so the loop
body sets the pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Literal

from ._stage_protocol import (
    ASK,
    CANCEL,
    CANCELLED,
    EVENTS,
    REQUEST,
    SUBSCRIBE,
    CancelMode,
    Subscription,
    subscription_options,
)
from .exceptions import NoProcess, ProcessExit
from .gen_server import cast
from .process import Down, Ref, demonitor, is_normal_exit, monitor, resolve, self

__all__ = ["stage_stream"]

# Seconds to wait, when the stream closes, for each producer to confirm the cancellation; only
# a producer stuck in a callback makes this matter.
_CLOSE_TIMEOUT_S = 5.0


async def stage_stream(
    producers: Iterable[Any],
    *,
    max_demand: int = 1000,
    min_demand: int | None = None,
    cancel: CancelMode = "transient",
    demand: Literal["forward", "accumulate"] = "forward",
    **options: Any,
) -> AsyncIterator[Any]:
    """Iterate over the events of ``producers``, with back-pressure.

    Args:
        producers: each a producer (a pid, a name or a ``Via``) or ``(producer, options)``
            with its own subscription options; the keyword arguments are the defaults.
        max_demand, min_demand: as for :func:`~trunkline.otp.stage.subscribe`.
        cancel: when a producer ends: ``"transient"`` (the default here) ends the iteration
            if it ended normally and raises :class:`~trunkline.otp.ProcessExit` with its reason
            if not; ``"permanent"`` raises in both cases (GenStage's default: the stream exits
            with the producer's reason); ``"temporary"`` goes on with the other producers.
            Iteration ends when no producer is left.
        demand: the demand mode to set on each producer once subscribed (GenStage's
            ``:demand`` option): a producer started in ``"accumulate"`` mode starts sending.
        options: other subscription options, for the producers' dispatchers.

    Raises:
        NoProcess: a producer is not running (unless its subscription is temporary).
        ProcessExit: a producer ended and its ``cancel`` mode says so.

    Close the iterator when leaving the loop early (``contextlib.aclosing``): the
    subscriptions are then cancelled and their messages taken out of the mailbox::

        async with aclosing(stage_stream(["numbers"], max_demand=100)) as events:
            async for event in events:
                if event > 1000:
                    break
    """
    defaults = {
        **options,
        "max_demand": max_demand,
        "min_demand": min_demand,
        "cancel": cancel,
    }
    entries = []
    for entry in producers:
        if type(entry) is tuple and len(entry) == 2 and isinstance(entry[1], Mapping):
            entries.append((entry[0], subscription_options({**defaults, **entry[1]})))
        else:
            entries.append((entry, subscription_options(defaults)))
    me = self()
    # subscription -> [pending demand, min, max, cancel mode]
    upstream: dict[Subscription, list[Any]] = {}
    by_ref: dict[Ref, Subscription] = {}

    def ours(message: Any) -> bool:
        if type(message) is tuple and len(message) == 3:
            tag = message[0]
            return (tag is EVENTS or tag is CANCELLED) and message[1] in upstream
        return type(message) is Down and message.ref in by_ref

    try:
        for to, subscription_opts in entries:
            producer = resolve(to)
            if producer is None:
                if subscription_opts["cancel"] == "temporary":
                    continue
                raise NoProcess(to)
            ref = monitor(producer)
            subscription = Subscription(producer, me, ref)
            upstream_max = subscription_opts["max_demand"]
            upstream[subscription] = [
                upstream_max,
                subscription_opts["min_demand"],
                upstream_max,
                subscription_opts["cancel"],
            ]
            by_ref[ref] = subscription
            producer._deliver((SUBSCRIBE, subscription, subscription_opts))
            producer._deliver((ASK, subscription, upstream_max))
        for subscription in upstream:
            cast(subscription.producer, (REQUEST, "demand", demand))
        while upstream:
            message = await me._receive(ours, None)
            if type(message) is Down:
                subscription = by_ref[message.ref]
                _end(upstream, by_ref, subscription, message.reason, flush=False)
                continue
            subscription = message[1]
            if message[0] is CANCELLED:
                _end(upstream, by_ref, subscription, message[2], flush=True)
                continue
            state = upstream[subscription]
            events = message[2]
            step = state[2] - state[1]
            for start in range(0, len(events), step):
                batch = events[start : start + step] if len(events) > step else events
                pending = max(0, state[0] - len(batch))
                more = 0
                if pending <= state[1]:
                    more = state[2] - pending
                    pending = state[2]
                state[0] = pending
                for event in batch:
                    yield event
                if more and subscription in upstream:
                    subscription.producer._deliver((ASK, subscription, more))
    finally:
        await _close(me, upstream, by_ref, ours)


def _end(
    upstream: dict[Subscription, list[Any]],
    by_ref: dict[Ref, Subscription],
    subscription: Subscription,
    reason: Any,
    *,
    flush: bool,
) -> None:
    mode = upstream.pop(subscription)[3]
    del by_ref[subscription.ref]
    if flush:
        demonitor(subscription.ref, flush=True)
    if mode == "permanent" or (mode == "transient" and not is_normal_exit(reason)):
        raise ProcessExit(reason)


async def _close(
    me: Any,
    upstream: dict[Subscription, list[Any]],
    by_ref: dict[Ref, Subscription],
    ours: Any,
) -> None:
    """Cancel what is left and take its messages out of the mailbox."""
    if not upstream:
        return
    for subscription in upstream:
        subscription.producer._deliver((CANCEL, subscription, "normal"))
    current = asyncio.current_task()
    if not me._alive or current is None or current is not me._task:
        # Closed by the garbage collector from another task, or the process is dying: there
        # is no mailbox of ours to wait on.
        for subscription in upstream:
            demonitor(subscription.ref)
        return
    # Events sent before the producer saw the cancel come first; then its confirmation.
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            while upstream:
                message = await me._receive(ours, None)
                if type(message) is Down:
                    subscription = by_ref.pop(message.ref)
                    upstream.pop(subscription)
                elif message[0] is CANCELLED:
                    subscription = message[1]
                    upstream.pop(subscription)
                    del by_ref[subscription.ref]
                    demonitor(subscription.ref, flush=True)
    except TimeoutError:
        for subscription in upstream:
            demonitor(subscription.ref, flush=True)
