"""A telemetry reporter that keeps Prometheus metrics, for ``GET /metrics``.

It takes :mod:`trunkline.otp.metrics` definitions and maintains, in a ``CollectorRegistry`` of
its own (never prometheus-client's global one, so that two nodes in one process, or tests, do
not meet), the matching Prometheus metric:

============  =====================================================================
definition    Prometheus metric
============  =====================================================================
counter       ``Counter`` (exposed with the ``_total`` suffix)
sum           ``Gauge`` increased by each value (``Counter`` with the reporter option
              ``{"prometheus_type": "counter"}``, for sums that never decrease)
last_value    ``Gauge`` set to each value
summary       ``Summary`` (``_count`` and ``_sum``)
distribution  ``Histogram`` with the definition's buckets
============  =====================================================================

Labels are the definition's tags, their values as text. The Prometheus name is the metric's
name with dots made underscores, unless the reporter option ``prometheus_name`` gives one;
the help text is the definition's ``description``.

Example::

    reporter = PrometheusReporter([counter("app.request.stop.count", tags=["route"])])
    with reporter:
        ...
    text = reporter.render()   # the text exposition format
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

from trunkline.otp import InvalidMetric, Reporter
from trunkline.otp import metrics as definitions

__all__ = ["CONTENT_TYPE", "PrometheusReporter", "prometheus_name"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Collector = Counter | Gauge | Histogram | Summary


def prometheus_name(metric: definitions.Metric) -> str:
    """The name ``metric`` is exposed under (see the module documentation)."""
    given = metric.reporter_options.get("prometheus_name")
    return given if isinstance(given, str) else metric.name.replace(".", "_")


class PrometheusReporter(Reporter):
    """Maintains a Prometheus metric per definition; see the module documentation.

    Args:
        metrics: the definitions, with distinct names (and distinct Prometheus names).
        registry: where the Prometheus metrics live; a new one by default.

    Raises:
        InvalidMetric: as :class:`~trunkline.otp.Reporter`, or a name, a tag or a reporter
            option cannot be used by Prometheus.
    """

    supports = (
        definitions.Counter,
        definitions.Sum,
        definitions.LastValue,
        definitions.Summary,
        definitions.Distribution,
    )

    def __init__(
        self, metrics: Iterable[definitions.Metric], registry: CollectorRegistry | None = None
    ) -> None:
        super().__init__(metrics)
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        self._collectors: dict[str, Collector] = {}
        for metric in self.metrics:
            try:
                self._collectors[metric.name] = self._make(metric)
            except ValueError as error:  # prometheus-client refuses a duplicate name
                raise InvalidMetric(f"metric {metric.name!r}: {error}") from None

    def check_metric(self, metric: definitions.Metric) -> None:
        name = prometheus_name(metric)
        if not _NAME.fullmatch(name):
            raise InvalidMetric(
                f"metric {metric.name!r}: {name!r} is not a Prometheus metric name; give one "
                "with the reporter option prometheus_name"
            )
        for tag in metric.tags:
            if not _LABEL.fullmatch(tag) or tag.startswith("__"):
                raise InvalidMetric(f"metric {metric.name!r}: tag {tag!r} is not a label name")
        kind = metric.reporter_options.get("prometheus_type")
        if kind is not None and not (isinstance(metric, definitions.Sum) and kind in _SUM_TYPES):
            raise InvalidMetric(
                f"metric {metric.name!r}: reporter option prometheus_type is for sum metrics, "
                f"one of {sorted(_SUM_TYPES)}; got {kind!r}"
            )

    def _make(self, metric: definitions.Metric) -> Collector:
        name = prometheus_name(metric)
        documentation = metric.description or metric.name
        labels = metric.tags
        registry = self.registry
        if isinstance(metric, definitions.Counter):
            return Counter(name, documentation, labels, registry=registry)
        if isinstance(metric, definitions.Sum):
            if metric.reporter_options.get("prometheus_type") == "counter":
                return Counter(name, documentation, labels, registry=registry)
            return Gauge(name, documentation, labels, registry=registry)
        if isinstance(metric, definitions.LastValue):
            return Gauge(name, documentation, labels, registry=registry)
        if isinstance(metric, definitions.Summary):
            return Summary(name, documentation, labels, registry=registry)
        if isinstance(metric, definitions.Distribution):
            return Histogram(name, documentation, labels, registry=registry, buckets=metric.buckets)
        raise AssertionError(f"unsupported metric {metric!r}")  # refused by Reporter.__init__

    def handle_metric(
        self, metric: definitions.Metric, value: float, tags: tuple[Any, ...]
    ) -> None:
        collector = self._collectors[metric.name]
        child: Any = collector.labels(*(str(tag) for tag in tags)) if tags else collector
        if isinstance(metric, definitions.Counter):
            child.inc()
        elif isinstance(metric, definitions.Sum):
            child.inc(value)
        elif isinstance(metric, definitions.LastValue):
            child.set(value)
        else:  # summary, distribution
            child.observe(value)

    def render(self) -> bytes:
        """Every metric of the registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


_SUM_TYPES = frozenset(("counter", "gauge"))
