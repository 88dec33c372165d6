"""A reporter that keeps its aggregates in memory, per metric and per set of tag values.

For tests (assert on what was measured), the dashboard, and exporters: a Prometheus exporter
reads :attr:`MemoryReporter.metrics` for names, kinds, units, descriptions and tag names (its
labels), and :meth:`MemoryReporter.series` for the values of each tag set.

What each kind of metric keeps, and :meth:`MemoryReporter.value` returns:

============  ============================================================  ===============
metric        value                                                         before any event
============  ============================================================  ===============
counter       the number of events (``int``)                                ``0``
sum           the sum of the measurements                                   ``0``
last_value    the most recent measurement                                   ``None``
summary       :class:`SummaryStats`: count, sum, min, max, mean, quantiles  ``None``
distribution  :class:`DistributionStats`: per-bucket counts, count, sum     ``None``
============  ============================================================  ===============

Summary quantiles are computed, when read, over the most recent ``max_samples`` measurements
(a sliding window, so they follow the current behaviour of the system rather than its whole
history), by linear interpolation between the closest ranks (numpy's default method); count,
sum, min, max and mean cover every measurement. Both are summary ``reporter_options``::

    summary("app.request.stop.duration", reporter_options={"max_samples": 4096,
                                                            "quantiles": (0.5, 0.95, 0.999)})

Updates run in the task executing the event and are not locked: emit a reporter's events from
one thread (the event loop's).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..exceptions import InvalidMetric
from ..metrics import Counter, Distribution, LastValue, Metric, Sum, Summary
from ..reporter import Reporter

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_QUANTILES",
    "DistributionStats",
    "MemoryReporter",
    "SummaryStats",
]

DEFAULT_MAX_SAMPLES = 1024
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)

Tags: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SummaryStats:
    """The statistics of a summary metric for one tag set.

    ``quantiles`` maps each quantile (``0.5``...) to its value over the recent samples.
    """

    count: int
    sum: float
    min: float
    max: float
    mean: float
    quantiles: Mapping[float, float] = field(hash=False)


@dataclass(frozen=True, slots=True)
class DistributionStats:
    """The histogram of a distribution metric for one tag set.

    ``counts[i]`` is the number of measurements in bucket ``i``: ``<= buckets[0]``, then
    ``(buckets[i-1], buckets[i]]``; the last count, ``counts[len(buckets)]``, is those above
    ``buckets[-1]``.
    """

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """``(bound, measurements <= bound)`` pairs, the last bound ``inf``: Prometheus' ``le``."""
        total = 0
        pairs = []
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return tuple(pairs)


class MemoryReporter(Reporter):
    """Aggregates its metrics in memory; read them with :meth:`value` and :meth:`snapshot`.

    Args:
        metrics: the metric definitions, with distinct names.

    Raises:
        InvalidMetric: as :class:`~trunkline.otp.reporter.Reporter`, or a summary's
            ``max_samples`` or ``quantiles`` option is invalid.

    Example::

        reporter = MemoryReporter([
            counter("app.job.stop.count", tags=["queue"]),
            summary("app.job.stop.duration", unit=("second", "millisecond")),
        ])
        with reporter:
            telemetry.execute(("app", "job", "stop"), {"duration": 0.25}, {"queue": "mail"})
        assert reporter.value("app.job.stop.count", tags={"queue": "mail"}) == 1
        assert reporter.value("app.job.stop.duration").max == 250.0
    """

    supports = (Counter, Sum, LastValue, Summary, Distribution)

    def __init__(self, metrics: Iterable[Metric]) -> None:
        super().__init__(metrics)
        self._series: dict[str, dict[Tags, _State]] = {metric.name: {} for metric in self.metrics}
        self._summary_options = {
            metric.name: _summary_options(metric)
            for metric in self.metrics
            if isinstance(metric, Summary)
        }

    def check_metric(self, metric: Metric) -> None:
        if isinstance(metric, Summary):
            _summary_options(metric)

    def handle_metric(self, metric: Metric, value: float, tags: Tags) -> None:
        series = self._series[metric.name]
        state = series.get(tags)
        if state is None:
            state = series[tags] = self._new_state(metric)
        state.update(value)

    def _new_state(self, metric: Metric) -> _State:
        if isinstance(metric, Counter):
            return _CounterState()
        if isinstance(metric, Sum):
            return _SumState()
        if isinstance(metric, LastValue):
            return _LastValueState()
        if isinstance(metric, Summary):
            return _SummaryState(*self._summary_options[metric.name])
        if isinstance(metric, Distribution):
            return _DistributionState(metric.buckets)
        raise AssertionError(f"unsupported metric {metric!r}")  # refused by Reporter.__init__

    # -- reading -------------------------------------------------------------------------------

    def value(self, metric: str | Metric, tags: Mapping[str, Any] | None = None) -> Any:
        """The aggregate of ``metric`` for the tag values ``tags`` (see the table above).

        Args:
            metric: the metric or its name.
            tags: a value for each of the metric's tags; none for an untagged metric.

        Raises:
            KeyError: the reporter has no such metric.
            ValueError: ``tags`` does not name exactly the metric's tags.
        """
        definition = self.metric(metric)
        state = self._series[definition.name].get(_key(definition, tags))
        if state is None:
            return 0 if isinstance(definition, Counter | Sum) else None
        return state.value()

    def series(self, metric: str | Metric) -> dict[Tags, Any]:
        """Every tag set seen for ``metric``, as tag values in ``metric.tags`` order, and its
        aggregate.

        Raises:
            KeyError: the reporter has no such metric.
        """
        definition = self.metric(metric)
        return {tags: state.value() for tags, state in self._series[definition.name].items()}

    def snapshot(self) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        """Every metric's series, by metric name, keyed by ``((tag, value), ...)`` pairs.

        Example: ``{"app.job.stop.count": {(("queue", "mail"),): 2}}``.
        """
        return {
            metric.name: {
                tuple(zip(metric.tags, tags, strict=True)): state.value()
                for tags, state in self._series[metric.name].items()
            }
            for metric in self.metrics
        }

    def reset(self, metric: str | Metric | None = None) -> None:
        """Forget the aggregates of ``metric``, or of every metric.

        Raises:
            KeyError: the reporter has no such metric.
        """
        if metric is None:
            for series in self._series.values():
                series.clear()
        else:
            self._series[self.metric(metric).name].clear()


def _key(metric: Metric, tags: Mapping[str, Any] | None) -> Tags:
    given = tags or {}
    if set(given) != set(metric.tags):
        raise ValueError(
            f"metric {metric.name!r} is tagged by {list(metric.tags)}; "
            f"got values for {sorted(given)}"
        )
    return tuple([given[tag] for tag in metric.tags])


def _summary_options(metric: Metric) -> tuple[int, tuple[float, ...]]:
    options = metric.reporter_options
    max_samples = options.get("max_samples", DEFAULT_MAX_SAMPLES)
    if not (isinstance(max_samples, int) and not isinstance(max_samples, bool) and max_samples > 0):
        raise InvalidMetric(
            f"metric {metric.name!r}: reporter option max_samples must be a positive int, "
            f"got {max_samples!r}"
        )
    quantiles = options.get("quantiles", DEFAULT_QUANTILES)
    if isinstance(quantiles, str) or not isinstance(quantiles, Iterable):
        quantiles = (quantiles,)
    quantiles = tuple(quantiles)
    if not all(
        isinstance(q, int | float) and not isinstance(q, bool) and 0 <= q <= 1 for q in quantiles
    ):
        raise InvalidMetric(
            f"metric {metric.name!r}: reporter option quantiles must be numbers between 0 and 1, "
            f"got {quantiles!r}"
        )
    return max_samples, quantiles


# -- aggregation state, one per metric and tag set ---------------------------------------------


class _State:
    __slots__ = ()

    def update(self, value: float) -> None:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError


class _CounterState(_State):
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def update(self, value: float) -> None:
        self.count += 1

    def value(self) -> int:
        return self.count


class _SumState(_State):
    __slots__ = ("sum",)

    def __init__(self) -> None:
        self.sum: float = 0

    def update(self, value: float) -> None:
        self.sum += value

    def value(self) -> float:
        return self.sum


class _LastValueState(_State):
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: float | None = None

    def update(self, value: float) -> None:
        self.last = value

    def value(self) -> float | None:
        return self.last


class _SummaryState(_State):
    __slots__ = ("count", "max", "min", "quantiles", "samples", "sum")

    def __init__(self, max_samples: int, quantiles: tuple[float, ...]) -> None:
        self.count = 0
        self.sum: float = 0
        self.min = float("inf")
        self.max = float("-inf")
        self.samples: deque[float] = deque(maxlen=max_samples)
        self.quantiles = quantiles

    def update(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.samples.append(value)

    def value(self) -> SummaryStats:
        ordered = sorted(self.samples)
        return SummaryStats(
            count=self.count,
            sum=self.sum,
            min=self.min,
            max=self.max,
            mean=self.sum / self.count,
            quantiles={q: _quantile(ordered, q) for q in self.quantiles},
        )


class _DistributionState(_State):
    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum: float = 0

    def update(self, value: float) -> None:
        # The first bound >= value: buckets are "less than or equal to" their bound.
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.sum += value

    def value(self) -> DistributionStats:
        return DistributionStats(self.buckets, tuple(self.counts), self.count, self.sum)


def _quantile(ordered: list[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
