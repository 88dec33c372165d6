"""The reporter behaviour: turn metric definitions into numbers somewhere.

A metric (:mod:`~trunkline.otp.metrics`) only describes an aggregation; a *reporter* does it. It
is given a list of metrics, attaches telemetry handlers to their events when started, and
detaches them when stopped. Reporters live in :mod:`trunkline.otp.reporters`
(:class:`~trunkline.otp.reporters.memory.MemoryReporter` keeps the aggregates in memory).

Writing one: subclass :class:`Reporter` and implement :meth:`Reporter.handle_metric`. The base
class does the rest, following Telemetry.Metrics' rules for reporters:

- one handler per event, shared by the metrics of that event (:func:`group_by_event`), with
  the id ``(reporter, event)``;
- for each metric: skip the event unless ``keep``/``drop`` accept it; skip it when the
  measurement is missing or not a number (logged once per metric) or a tag is missing; else
  call ``handle_metric(metric, value, tags)`` with the converted value and the tag values in
  the order of ``metric.tags``;
- an exception in a metric's functions or in ``handle_metric`` is logged and costs that one
  update only: the handler stays attached, the other metrics still get the event;
- :meth:`Reporter.stop` detaches everything.

``handle_metric`` runs synchronously in the task that executed the event, like every telemetry
handler: keep it fast (update a number; ship it elsewhere from a process).

Reporters that need per-metric settings read them from ``metric.reporter_options`` and check
them in :meth:`Reporter.check_metric`, so that a bad option fails when the reporter is made,
with the metric's name. A reporter that cannot handle a kind of metric lists the kinds it can in
:attr:`Reporter.supports`.

To tie a reporter's life to a process, start it in a server's ``init`` and stop it in its
``terminate`` (with ``trap_exit = True``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar

from . import telemetry
from .exceptions import InvalidMetric, TelemetryError
from .metrics import Metric
from .telemetry import Event

__all__ = ["Reporter", "group_by_event"]

log = logging.getLogger("trunkline.otp.telemetry")


def group_by_event(metrics: Iterable[Metric]) -> dict[Event, tuple[Metric, ...]]:
    """The metrics by the event they listen to, in their order: one handler per event."""
    groups: dict[Event, list[Metric]] = {}
    for metric in metrics:
        groups.setdefault(metric.event_name, []).append(metric)
    return {event: tuple(group) for event, group in groups.items()}


class Reporter(ABC):
    """Base class of reporters: attaches to the events of its metrics and feeds it values.

    Args:
        metrics: the metric definitions; their names must be distinct.

    Raises:
        InvalidMetric: two metrics share a name, a metric's kind is not in :attr:`supports`,
            or :meth:`check_metric` rejects one.

    Example::

        class PrintReporter(Reporter):
            def handle_metric(self, metric, value, tags):
                print(metric.name, dict(zip(metric.tags, tags)), value)

        with PrintReporter([counter("app.request.stop.count")]):
            ...
    """

    supports: ClassVar[tuple[type[Metric], ...]] = (Metric,)
    """The kinds of metric this reporter handles; others are refused when it is made."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics: tuple[Metric, ...] = tuple(metrics)
        self._by_name: dict[str, Metric] = {}
        for metric in self.metrics:
            if not isinstance(metric, Metric):
                raise InvalidMetric(f"{type(self).__name__}: not a metric: {metric!r}")
            if metric.name in self._by_name:
                raise InvalidMetric(
                    f"{type(self).__name__}: two metrics are named {metric.name!r}; "
                    "give each a distinct name"
                )
            if not isinstance(metric, self.supports):
                raise InvalidMetric(
                    f"{type(self).__name__} does not support {metric.kind} metrics "
                    f"({metric.name!r})"
                )
            self.check_metric(metric)
            self._by_name[metric.name] = metric
        self._handler_ids: list[tuple[Reporter, Event]] = []
        self._warned: set[str] = set()

    # -- the behaviour --------------------------------------------------------------------------

    def check_metric(self, metric: Metric) -> None:  # noqa: B027 - optional, unlike handle_metric
        """Validate ``metric`` (its ``reporter_options``...) for this reporter.

        Called once per metric when the reporter is made. The default accepts everything.

        Raises:
            InvalidMetric: naming the metric and the option.
        """

    @abstractmethod
    def handle_metric(self, metric: Metric, value: float, tags: tuple[Any, ...]) -> None:
        """Record ``value`` for ``metric`` under the tag values ``tags``.

        ``value`` is the measurement converted to ``metric.unit`` (``1`` for a counter);
        ``tags`` are the values of ``metric.tags``, in that order.
        """

    # -- starting and stopping -----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the reporter's handlers are attached."""
        return bool(self._handler_ids)

    def start(self) -> None:
        """Attach a handler to the event of each metric.

        Raises:
            TelemetryError: it is already started.
        """
        if self._handler_ids:
            raise TelemetryError(f"{self!r} is already started")
        try:
            for event, metrics in group_by_event(self.metrics).items():
                handler_id = (self, event)
                telemetry.attach(handler_id, event, self._handle_event, metrics)
                self._handler_ids.append(handler_id)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Detach the reporter's handlers; the aggregates it kept stay readable."""
        ids, self._handler_ids = self._handler_ids, []
        for handler_id in ids:
            telemetry.detach(handler_id)

    def __enter__(self) -> Reporter:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def metric(self, name: str | Metric) -> Metric:
        """The metric called ``name`` (or ``name`` itself, when it is one of this reporter's).

        Raises:
            KeyError: the reporter has no such metric.
        """
        key = name.name if isinstance(name, Metric) else name
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"{type(self).__name__} has no metric named {key!r}") from None

    def __repr__(self) -> str:
        state = "started" if self._handler_ids else "stopped"
        return f"<{type(self).__name__} metrics={len(self.metrics)} {state}>"

    # -- handling events -----------------------------------------------------------------------

    def _handle_event(
        self,
        event: Event,
        measurements: Mapping[str, Any],
        metadata: Mapping[str, Any],
        metrics: tuple[Metric, ...],
    ) -> None:
        for metric in metrics:
            try:
                if not metric.keeps(measurements, metadata):
                    continue
                value = metric.measure(measurements, metadata)
                if value is None:
                    continue
                if not isinstance(value, (int, float)):
                    self._warn_once(metric, value)
                    continue
                tags = metric.tags_of(metadata)
                if tags is None:
                    continue
                self.handle_metric(metric, value, tags)
            except Exception:
                # Not raised to telemetry, which would detach the handler of every metric of
                # this event because one of them could not read one event.
                log.exception("%r could not update metric %r on event %r", self, metric.name, event)

    def _warn_once(self, metric: Metric, value: object) -> None:
        if metric.name not in self._warned:
            self._warned.add(metric.name)
            log.warning(
                "%r skips events of metric %r whose measurement is not a number, e.g. %r",
                self,
                metric.name,
                value,
            )
