"""Metric definitions: what to aggregate from which telemetry events (Elixir's Telemetry.Metrics).

A metric says which event to listen to, which measurement to take from it, and how to break it
down by metadata (*tags*). It aggregates nothing itself: a reporter
(:class:`~trunkline.otp.reporter.Reporter`) attaches to the events and keeps the numbers.

Five kinds:

- :func:`counter`: the number of events (the measurement is not read).
- :func:`sum`: the sum of the measurement.
- :func:`last_value`: the measurement of the most recent event.
- :func:`summary`: statistics of the measurement (count, sum, min, max, mean, quantiles...;
  each reporter says which).
- :func:`distribution`: a histogram of the measurement over fixed ``buckets``.

The name is dotted; by default everything but its last segment is the event and the last
segment the measurement::

    summary("trunkline.jobs.job.stop.duration", tags=["queue"], unit=("second", "millisecond"))
    #        <----- event_name ------------> <measurement>

Options, common to all kinds (see :class:`MetricOptions`): ``event_name``, ``measurement`` (a
key, or a function of the measurements, or of the measurements and the metadata), ``tags``
(metadata keys), ``tag_values`` (a function turning the metadata into the mapping the tags are
read from), ``keep``/``drop`` (predicates on the metadata, or on the metadata and the
measurements), ``unit`` (a name, or a ``(from, to)`` conversion), ``description`` and
``reporter_options``. Definitions are validated when made; mistakes raise
:class:`~trunkline.otp.exceptions.InvalidMetric` naming the metric and the option.

Unit conversions: time units ``second``, ``millisecond``, ``microsecond``, ``nanosecond``
(telemetry spans measure seconds) and byte units ``byte``, ``kilobyte``, ``megabyte``,
``gigabyte`` (powers of 1000). A unit that is not converted may be any name (``"request"``).
"""

from __future__ import annotations

import inspect
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypedDict, Unpack, cast

from .exceptions import InvalidMetric
from .telemetry import Event

__all__ = [
    "BYTE_UNITS",
    "TIME_UNITS",
    "Counter",
    "Distribution",
    "LastValue",
    "Metric",
    "MetricOptions",
    "Sum",
    "Summary",
    "counter",
    "distribution",
    "last_value",
    "sum",
    "summary",
]

Measurements: TypeAlias = Mapping[str, Any]
Metadata: TypeAlias = Mapping[str, Any]
MeasurementFunction: TypeAlias = (
    Callable[[Measurements], Any] | Callable[[Measurements, Metadata], Any]
)
Predicate: TypeAlias = Callable[[Metadata], Any] | Callable[[Metadata, Measurements], Any]

# Sizes in the smallest unit, so that conversions are one exact multiplication or division.
TIME_UNITS: Mapping[str, int] = MappingProxyType(
    {"second": 10**9, "millisecond": 10**6, "microsecond": 10**3, "nanosecond": 1}
)
BYTE_UNITS: Mapping[str, int] = MappingProxyType(
    {"byte": 1, "kilobyte": 10**3, "megabyte": 10**6, "gigabyte": 10**9}
)


class MetricOptions(TypedDict, total=False):
    """The options every metric factory takes.

    Attributes:
        event_name: the event, as a tuple or a dotted string; default: the name without its
            last segment.
        measurement: a measurements key, or ``f(measurements)``, or
            ``f(measurements, metadata)`` (a function taking two positional parameters);
            default: the name's last segment. An event without it is skipped.
        tags: metadata keys to break the metric down by: one value per distinct combination.
            An event missing one of them is skipped.
        tag_values: ``f(metadata) -> mapping`` the tags are read from instead of the metadata.
        keep: ``f(metadata)`` or ``f(metadata, measurements)``; only events for which it is
            true count.
        drop: the opposite of ``keep``; give at most one of them.
        unit: the unit of the values, or ``(from_unit, to_unit)`` to convert measurements
            (``("second", "millisecond")``).
        description: what the metric means, for reporters to show.
        reporter_options: options for reporters, which document and validate their own.
    """

    event_name: Event | str
    measurement: str | MeasurementFunction
    tags: Iterable[str]
    tag_values: Callable[[Metadata], Mapping[str, Any]]
    keep: Predicate
    drop: Predicate
    unit: str | tuple[str, str]
    description: str
    reporter_options: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """What every metric definition holds; make them with :func:`counter`, :func:`sum`...

    The fields are the options of :class:`MetricOptions`, resolved: ``event_name`` is a tuple,
    ``tags`` a tuple, and a ``(from, to)`` unit is stored as ``unit=to, convert_from=from``.
    Reporters read values through :meth:`keeps`, :meth:`measure` and :meth:`tags_of`, which
    apply ``keep``/``drop``, the measurement, the unit conversion and ``tag_values``.

    Raises:
        InvalidMetric: on construction, when an option is invalid.
    """

    kind: ClassVar[str] = "metric"

    name: str
    event_name: Event
    measurement: str | MeasurementFunction
    tags: tuple[str, ...] = ()
    tag_values: Callable[[Metadata], Mapping[str, Any]] | None = None
    keep: Predicate | None = None
    drop: Predicate | None = None
    unit: str | None = None
    convert_from: str | None = None
    description: str | None = None
    reporter_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # Precomputed from the fields above, so that reading an event costs as little as possible.
    _value: Callable[[Measurements, Metadata], Any] = field(init=False, repr=False, compare=False)
    _filter: Callable[[Measurements, Metadata], bool] | None = field(
        init=False, repr=False, compare=False
    )
    _tag_getter: Callable[[Any], Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_dotted(self.name, self.name, "name")
        event_name = self.event_name
        if isinstance(event_name, str):
            event_name = _check_dotted(self.name, event_name, "event_name")
        elif not (
            isinstance(event_name, tuple)
            and event_name
            and all(isinstance(part, str) and part for part in event_name)
        ):
            raise _invalid(self.name, "event_name", "a non-empty tuple of strings", event_name)
        object.__setattr__(self, "event_name", event_name)
        if isinstance(self.measurement, str):
            if not self.measurement:
                raise _invalid(self.name, "measurement", "a key or a function", "")
        elif not callable(self.measurement):
            raise _invalid(self.name, "measurement", "a key or a function", self.measurement)
        self._resolve_tags()
        for option in ("tag_values", "keep", "drop"):
            value = getattr(self, option)
            if value is not None and not callable(value):
                raise _invalid(self.name, option, "a function", value)
        if self.keep is not None and self.drop is not None:
            raise InvalidMetric(f"metric {self.name!r}: give keep or drop, not both")
        if self.description is not None and not isinstance(self.description, str):
            raise _invalid(self.name, "description", "a string", self.description)
        if not isinstance(self.reporter_options, Mapping):
            raise _invalid(self.name, "reporter_options", "a mapping", self.reporter_options)
        object.__setattr__(self, "reporter_options", MappingProxyType(dict(self.reporter_options)))
        convert = self._resolve_unit()
        object.__setattr__(self, "_value", _reader(self.name, self.measurement, convert))
        object.__setattr__(self, "_filter", self._make_filter())

    def _resolve_tags(self) -> None:
        tags = self.tags
        if isinstance(tags, str) or not isinstance(tags, Iterable):
            raise _invalid(self.name, "tags", "a list of metadata keys", tags)
        tags = tuple(tags)
        for tag in tags:
            if not isinstance(tag, str) or not tag:
                raise _invalid(self.name, "tags", "a list of metadata keys (strings)", tags)
        if len(set(tags)) != len(tags):
            raise _invalid(self.name, "tags", "a list of distinct keys", tags)
        object.__setattr__(self, "tags", tags)
        object.__setattr__(self, "_tag_getter", operator.itemgetter(*tags) if tags else None)

    def _resolve_unit(self) -> Callable[[Any], Any] | None:
        unit, source = self.unit, self.convert_from
        if unit is not None and not (isinstance(unit, str) and unit):
            raise _invalid(self.name, "unit", "a unit name or a (from, to) pair", unit)
        if source is None or source == unit:
            return None
        for units in (TIME_UNITS, BYTE_UNITS):
            if source in units and unit in units:
                return _converter(units[source], units[unit])  # type: ignore[index]
        raise InvalidMetric(
            f"metric {self.name!r}: cannot convert {source!r} to {unit!r}; conversions are "
            f"between time units ({', '.join(TIME_UNITS)}) or byte units "
            f"({', '.join(BYTE_UNITS)})"
        )

    def _make_filter(self) -> Callable[[Measurements, Metadata], bool] | None:
        predicate, wanted = (self.keep, True) if self.keep is not None else (self.drop, False)
        if predicate is None:
            return None
        option = "keep" if wanted else "drop"
        if _arity(self.name, option, predicate) == 2:
            two = cast(Callable[[Metadata, Measurements], Any], predicate)
            return lambda measurements, metadata: bool(two(metadata, measurements)) is wanted
        one = cast(Callable[[Metadata], Any], predicate)
        return lambda measurements, metadata: bool(one(metadata)) is wanted

    # -- reading events, for reporters --------------------------------------------------------

    def keeps(self, measurements: Measurements, metadata: Metadata) -> bool:
        """Whether this event counts for this metric, by ``keep`` or ``drop``."""
        accept = self._filter
        return True if accept is None else accept(measurements, metadata)

    def measure(self, measurements: Measurements, metadata: Metadata) -> Any:
        """The value this event brings, converted to :attr:`unit`; ``None`` when it has none.

        Reporters should skip events whose value is ``None`` or not a number.
        """
        return self._value(measurements, metadata)

    def tags_of(self, metadata: Metadata) -> tuple[Any, ...] | None:
        """The values of :attr:`tags`, in order, for this event; ``None`` when one is missing."""
        getter = self._tag_getter
        if getter is None:
            return ()
        source = metadata if self.tag_values is None else self.tag_values(metadata)
        try:
            values = getter(source)
        except KeyError:
            return None
        # itemgetter returns a bare value for one key, a tuple for several.
        return (values,) if len(self.tags) == 1 else values


@dataclass(frozen=True, slots=True, kw_only=True)
class Counter(Metric):
    """The number of events; :meth:`measure` is always 1 (the measurement is not read)."""

    kind: ClassVar[str] = "counter"

    def measure(self, measurements: Measurements, metadata: Metadata) -> Any:
        return 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Sum(Metric):
    """The sum of the measurement."""

    kind: ClassVar[str] = "sum"


@dataclass(frozen=True, slots=True, kw_only=True)
class LastValue(Metric):
    """The measurement of the most recent event (a gauge)."""

    kind: ClassVar[str] = "last_value"


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary(Metric):
    """Statistics of the measurement; which ones is up to the reporter."""

    kind: ClassVar[str] = "summary"


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution(Metric):
    """A histogram of the measurement.

    ``buckets`` are increasing upper bounds: ``(0.1, 0.5, 1)`` counts values in ``<= 0.1``,
    ``(0.1, 0.5]``, ``(0.5, 1]`` and ``> 1``.
    """

    kind: ClassVar[str] = "distribution"

    buckets: tuple[float, ...]

    def __post_init__(self) -> None:
        # slots=True makes a new class, which breaks zero-argument super().
        Metric.__post_init__(self)
        buckets = self.buckets
        expected = "a non-empty, increasing list of finite numbers"
        if isinstance(buckets, str) or not isinstance(buckets, Iterable):
            raise _invalid(self.name, "buckets", expected, buckets)
        buckets = tuple(buckets)
        if not buckets or not all(
            isinstance(bound, int | float) and not isinstance(bound, bool) and math.isfinite(bound)
            for bound in buckets
        ):
            raise _invalid(self.name, "buckets", expected, buckets)
        if any(low >= high for low, high in itertools.pairwise(buckets)):
            raise _invalid(self.name, "buckets", expected, buckets)
        object.__setattr__(self, "buckets", buckets)


# -- the factories -----------------------------------------------------------------------------


def counter(name: str, **options: Unpack[MetricOptions]) -> Counter:
    """The number of events.

    Example::

        counter("trunkline.jobs.job.stop.count", tags=["queue", "state"])
    """
    return Counter(**_resolve(name, options))


def sum(name: str, **options: Unpack[MetricOptions]) -> Sum:
    """The sum of the measurement.

    Example::

        sum("trunkline.mailer.delivery.stop.bytes", unit=("byte", "kilobyte"))
    """
    return Sum(**_resolve(name, options))


def last_value(name: str, **options: Unpack[MetricOptions]) -> LastValue:
    """The measurement of the most recent event.

    Example::

        last_value("trunkline.jobs.queue.length", tags=["queue"])
    """
    return LastValue(**_resolve(name, options))


def summary(name: str, **options: Unpack[MetricOptions]) -> Summary:
    """Statistics of the measurement: count, sum, min, max, mean, quantiles (per reporter).

    Example::

        summary("trunkline.jobs.job.stop.duration", unit=("second", "millisecond"))
    """
    return Summary(**_resolve(name, options))


def distribution(
    name: str, *, buckets: Iterable[float], **options: Unpack[MetricOptions]
) -> Distribution:
    """A histogram of the measurement over ``buckets``, increasing upper bounds.

    Example::

        distribution("trunkline.http.request.stop.duration", buckets=[0.01, 0.1, 1])
    """
    return Distribution(buckets=buckets, **_resolve(name, options))  # type: ignore[arg-type]


# -- helpers -----------------------------------------------------------------------------------


def _resolve(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(MetricOptions.__annotations__)
    if unknown:
        raise InvalidMetric(
            f"metric {name!r}: unknown option(s) {', '.join(sorted(unknown))}; expected some "
            f"of {', '.join(MetricOptions.__annotations__)}"
        )
    segments = _check_dotted(name, name, "name")
    fields = dict(options)
    if "event_name" not in fields:
        if len(segments) < 2:
            raise InvalidMetric(
                f"metric {name!r}: the name needs an event and a measurement "
                "('app.request.stop.duration'), or give event_name"
            )
        fields["event_name"] = segments[:-1]
    fields.setdefault("measurement", segments[-1])
    unit = fields.get("unit")
    if isinstance(unit, tuple):
        if len(unit) != 2 or not all(isinstance(part, str) for part in unit):
            raise _invalid(name, "unit", "a unit name or a (from, to) pair", unit)
        fields["convert_from"], fields["unit"] = unit
    return {"name": name, **fields}


def _check_dotted(metric: str, value: object, option: str) -> Event:
    if not isinstance(value, str) or not value:
        raise _invalid(metric, option, "a non-empty dotted name", value)
    segments = tuple(value.split("."))
    if "" in segments:
        raise _invalid(metric, option, "a dotted name without empty segments", value)
    return segments


def _invalid(metric: str, option: str, expected: str, got: object) -> InvalidMetric:
    return InvalidMetric(f"metric {metric!r}: {option} must be {expected}, got {got!r}")


def _arity(metric: str, option: str, function: Callable[..., Any]) -> int:
    """1 or 2: how many positional arguments ``function`` wants."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature; assume the simple form
        return 1
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    if len(required) > 2 or not (positional or variadic):
        raise _invalid(metric, option, "a function of one or two arguments", function)
    return 2 if len(positional) >= 2 else 1


def _converter(source: int, target: int) -> Callable[[Any], Any]:
    # One exact operation: 2.5 s is 2500.0 ms, and 2500 ms is 2.5 s, with no 0.001 rounding.
    if source >= target:
        factor = source // target

        def scale_up(value: Any) -> Any:
            return value * factor if isinstance(value, (int, float)) else value

        return scale_up
    divisor = target // source

    def scale_down(value: Any) -> Any:
        return value / divisor if isinstance(value, (int, float)) else value

    return scale_down


def _reader(
    metric: str, measurement: str | MeasurementFunction, convert: Callable[[Any], Any] | None
) -> Callable[[Measurements, Metadata], Any]:
    # Specialised closures: this runs for every event of every metric a reporter keeps.
    if isinstance(measurement, str):
        key = measurement
        if convert is None:
            return lambda measurements, metadata: measurements.get(key)

        def read_key(measurements: Measurements, metadata: Metadata) -> Any:
            value = measurements.get(key)
            return None if value is None else convert(value)

        return read_key
    read: Callable[[Measurements, Metadata], Any]
    if _arity(metric, "measurement", measurement) == 2:
        read = cast(Callable[[Measurements, Metadata], Any], measurement)
    else:
        one = cast(Callable[[Measurements], Any], measurement)
        read = lambda measurements, metadata: one(measurements)  # noqa: E731
    if convert is None:
        return read

    def read_converted(measurements: Measurements, metadata: Metadata) -> Any:
        value = read(measurements, metadata)
        return None if value is None else convert(value)

    return read_converted
