import asyncio
import dataclasses
import logging
import math
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.otp import telemetry
from trunkline.otp.exceptions import InvalidMetric, TelemetryError
from trunkline.otp.metrics import (
    Counter,
    Distribution,
    Metric,
    counter,
    distribution,
    last_value,
    sum,
    summary,
)
from trunkline.otp.reporter import Reporter, group_by_event
from trunkline.otp.reporters import DistributionStats, MemoryReporter, SummaryStats

STOP = ("app", "job", "stop")


@pytest.fixture(autouse=True)
def no_leaked_handlers() -> Iterator[None]:
    """Handlers are global to the OS process: every test must detach what it attached."""
    before = {handler.id for handler in telemetry.list_handlers()}
    yield
    leaked = {handler.id for handler in telemetry.list_handlers()} - before
    for handler_id in leaked:
        telemetry.detach(handler_id)
    assert not leaked, f"handlers left attached: {leaked}"


def stop(measurements: dict[str, Any], **metadata: Any) -> None:
    telemetry.execute(STOP, measurements, metadata)


# -- definitions -------------------------------------------------------------------------------


def test_the_event_and_measurement_come_from_the_dotted_name() -> None:
    metric = summary("app.job.stop.duration", tags=["queue"], description="job run time")
    assert isinstance(metric, Metric)
    assert metric.kind == "summary"
    assert metric.name == "app.job.stop.duration"
    assert metric.event_name == STOP
    assert metric.measurement == "duration"
    assert metric.tags == ("queue",)
    assert metric.description == "job run time"


def test_event_name_and_measurement_can_be_given() -> None:
    by_string = sum("app.jobs.rows", event_name="app.job.stop", measurement="rows")
    by_tuple = sum("app.jobs.rows", event_name=STOP, measurement="rows")
    assert by_string.event_name == by_tuple.event_name == STOP
    assert by_string.measure({"rows": 4, "jobs": 1}, {}) == 4
    single = counter("jobs", event_name=STOP)
    assert single.event_name == STOP


def test_measurement_functions_take_measurements_or_measurements_and_metadata() -> None:
    one = sum("app.job.stop.total", measurement=lambda m: m["a"] + m["b"])
    two = sum("app.job.stop.weighted", measurement=lambda m, meta: m["a"] * meta["weight"])
    assert one.measure({"a": 1, "b": 2}, {}) == 3
    assert two.measure({"a": 3}, {"weight": 10}) == 30


def test_a_missing_measurement_reads_as_none_and_counters_do_not_read_it() -> None:
    assert sum("app.job.stop.rows").measure({"duration": 1.0}, {}) is None
    assert counter("app.job.stop.count").measure({}, {}) == 1


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        (("second", "millisecond"), 2.5, 2500.0),
        (("millisecond", "second"), 2500, 2.5),
        (("second", "microsecond"), 3, 3_000_000),
        (("nanosecond", "millisecond"), 1_500_000, 1.5),
        (("byte", "kilobyte"), 2048, 2.048),
        (("megabyte", "byte"), 3, 3_000_000),
        (("second", "second"), 1.25, 1.25),
    ],
)
def test_unit_conversion(unit: tuple[str, str], value: float, expected: float) -> None:
    metric = summary("app.job.stop.x", unit=unit)
    assert metric.unit == unit[1]
    assert metric.measure({"x": value}, {}) == expected


def test_unit_conversion_applies_to_measurement_functions_and_survives_replace() -> None:
    metric = summary(
        "app.job.stop.total", measurement=lambda m: m["a"] + m["b"], unit=("second", "millisecond")
    )
    assert metric.convert_from == "second"
    assert metric.measure({"a": 1, "b": 0.5}, {}) == 1500.0
    retagged = dataclasses.replace(metric, tags=("queue",))
    assert retagged.measure({"a": 1, "b": 0.5}, {}) == 1500.0


def test_a_plain_unit_is_any_name_and_converts_nothing() -> None:
    metric = last_value("app.queue.size.length", unit="job")
    assert metric.unit == "job"
    assert metric.convert_from is None
    assert metric.measure({"length": 7}, {}) == 7


def test_tags_come_from_metadata_or_from_tag_values() -> None:
    plain = counter("app.job.stop.count", tags=["queue", "worker"])
    assert plain.tags_of({"queue": "mail", "worker": 2, "other": 0}) == ("mail", 2)
    assert plain.tags_of({"queue": "mail"}) is None
    derived = counter(
        "app.job.stop.count",
        tags=["queue"],
        tag_values=lambda meta: {"queue": meta["job"].split(":")[0]},
    )
    assert derived.tags_of({"job": "mail:welcome"}) == ("mail",)
    assert counter("app.job.stop.count").tags_of({"queue": "mail"}) == ()


def test_keep_and_drop_filter_on_metadata_or_on_metadata_and_measurements() -> None:
    keep = counter("app.job.stop.count", keep=lambda meta: meta["queue"] == "mail")
    drop = counter("app.job.stop.count", drop=lambda meta: meta["queue"] == "mail")
    slow = counter("app.job.stop.count", keep=lambda meta, m: m["duration"] > 1)
    assert keep.keeps({}, {"queue": "mail"})
    assert not keep.keeps({}, {"queue": "sms"})
    assert not drop.keeps({}, {"queue": "mail"})
    assert drop.keeps({}, {"queue": "sms"})
    assert slow.keeps({"duration": 2}, {})
    assert not slow.keeps({"duration": 0.5}, {})
    assert counter("app.job.stop.count").keeps({}, {})


def test_definitions_are_frozen_and_hashable() -> None:
    metric = distribution("app.job.stop.duration", buckets=range(1, 4), reporter_options={"a": 1})
    assert metric.buckets == (1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        metric.reporter_options["a"] = 2  # type: ignore[index]
    assert hash(metric) == hash(dataclasses.replace(metric))
    assert metric == dataclasses.replace(metric)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: counter(""), "name must be a non-empty dotted name"),
        (lambda: counter("app..count"), "without empty segments"),
        (lambda: counter("count"), "needs an event and a measurement"),
        (lambda: counter("app.count", event_name=()), "event_name must be"),
        (lambda: counter("app.count", event_name="app..x"), "event_name must be"),
        (lambda: sum("app.x", measurement=3), "measurement must be a key or a function"),
        (lambda: sum("app.x", measurement=lambda a, b, c: 0), "one or two arguments"),
        (lambda: counter("app.count", tags="queue"), "tags must be a list"),
        (lambda: counter("app.count", tags=["q", "q"]), "distinct"),
        (lambda: counter("app.count", tags=[1]), "tags must be"),
        (lambda: counter("app.count", tag_values={}), "tag_values must be a function"),
        (lambda: counter("app.count", keep=True), "keep must be a function"),
        (lambda: counter("app.count", keep=bool, drop=bool), "keep or drop, not both"),
        (lambda: sum("app.x", unit=("second", "byte")), "cannot convert 'second' to 'byte'"),
        (lambda: sum("app.x", unit=("second", "fortnight")), "time units (second, milli"),
        (lambda: sum("app.x", unit=("second",)), "unit must be"),
        (lambda: sum("app.x", unit=""), "unit must be"),
        (lambda: sum("app.x", description=3), "description must be a string"),
        (lambda: sum("app.x", reporter_options=[1]), "reporter_options must be a mapping"),
        (lambda: sum("app.x", bucket=[1]), "unknown option(s) bucket"),
        (lambda: distribution("app.x", buckets=[]), "buckets must be"),
        (lambda: distribution("app.x", buckets=[1, 1]), "increasing"),
        (lambda: distribution("app.x", buckets=[2, 1]), "increasing"),
        (lambda: distribution("app.x", buckets=[1, math.inf]), "finite"),
        (lambda: distribution("app.x", buckets=[True]), "buckets must be"),
        (lambda: distribution("app.x", buckets="12"), "buckets must be"),
    ],
)
def test_invalid_definitions_fail_with_the_metric_and_the_option(make: Any, message: str) -> None:
    with pytest.raises(InvalidMetric) as info:
        make()
    assert message in str(info.value)
    assert isinstance(info.value, TelemetryError)
    assert isinstance(info.value, ValueError)


# -- the reporter behaviour --------------------------------------------------------------------


class Collect(Reporter):
    supports = (Counter, Distribution)

    def __init__(self, metrics: Any) -> None:
        super().__init__(metrics)
        self.seen: list[tuple[str, float, tuple[Any, ...]]] = []

    def handle_metric(self, metric: Metric, value: float, tags: tuple[Any, ...]) -> None:
        self.seen.append((metric.name, value, tags))


def test_a_reporter_attaches_one_handler_per_event_and_detaches_on_stop() -> None:
    metrics = [
        counter("app.job.stop.count"),
        counter("app.job.start.count"),
        counter("app.job.stop.failed", keep=lambda meta: meta.get("error") is not None),
    ]
    assert list(group_by_event(metrics)) == [STOP, ("app", "job", "start")]
    reporter = Collect(metrics)
    assert not reporter.started
    with reporter:
        assert reporter.started
        handlers = telemetry.list_handlers(("app", "job"))
        assert [(h.id, h.event) for h in handlers] == [
            ((reporter, STOP), STOP),
            ((reporter, ("app", "job", "start")), ("app", "job", "start")),
        ]
        with pytest.raises(TelemetryError, match="already started"):
            reporter.start()
        stop({}, error="timeout")
        stop({})
    assert not reporter.started
    stop({})
    assert reporter.seen == [
        ("app.job.stop.count", 1, ()),
        ("app.job.stop.failed", 1, ()),
        ("app.job.stop.count", 1, ()),
    ]
    reporter.stop()  # stopping twice is harmless


def test_a_reporter_refuses_duplicate_names_and_unsupported_kinds() -> None:
    with pytest.raises(InvalidMetric, match="two metrics are named"):
        Collect([counter("app.job.stop.count"), counter("app.job.stop.count", tags=["q"])])
    with pytest.raises(InvalidMetric, match="does not support summary"):
        Collect([summary("app.job.stop.duration")])
    with pytest.raises(InvalidMetric, match="not a metric"):
        Collect(["app.job.stop.count"])


def test_a_failing_metric_costs_its_own_update_only(caplog: pytest.LogCaptureFixture) -> None:
    broken = sum("app.job.stop.bad", measurement=lambda m: m["missing"])
    good = counter("app.job.stop.count")
    with MemoryReporter([broken, good]) as reporter, caplog.at_level(logging.ERROR):
        stop({"duration": 1})
        stop({"duration": 1})
        assert reporter.started
        assert len(telemetry.list_handlers(STOP)) == 1
    assert reporter.value(good) == 2
    assert reporter.value(broken) == 0
    assert len(caplog.records) == 2
    assert "'app.job.stop.bad'" in caplog.records[0].getMessage()


def test_events_with_a_non_numeric_measurement_are_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with MemoryReporter([sum("app.job.stop.rows")]) as reporter, caplog.at_level(logging.WARNING):
        stop({"rows": "many"})
        stop({"rows": "lots"})
        stop({"rows": 3})
        stop({})
    assert reporter.value("app.job.stop.rows") == 3
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "'many'" in warning.getMessage()


# -- the memory reporter -----------------------------------------------------------------------


def test_counter_counts_events_per_tag_set_and_skips_events_missing_a_tag() -> None:
    metric = counter("app.job.stop.count", tags=["queue", "state"])
    with MemoryReporter([metric]) as reporter:
        stop({}, queue="mail", state="ok")
        stop({}, queue="mail", state="ok")
        stop({}, queue="mail", state="failed")
        stop({}, queue="sms", state="ok", extra=1)
        stop({}, queue="sms")
    assert reporter.value(metric, {"queue": "mail", "state": "ok"}) == 2
    assert reporter.value(metric, {"queue": "mail", "state": "failed"}) == 1
    assert reporter.value(metric, {"state": "ok", "queue": "sms"}) == 1
    assert reporter.value(metric, {"queue": "sms", "state": "failed"}) == 0
    assert reporter.series(metric) == {("mail", "ok"): 2, ("mail", "failed"): 1, ("sms", "ok"): 1}


def test_sum_and_last_value() -> None:
    rows = sum("app.job.stop.rows", tags=["queue"])
    latest = last_value("app.job.stop.rows_last", measurement="rows", tags=["queue"])
    with MemoryReporter([rows, latest]) as reporter:
        assert reporter.value(latest, {"queue": "mail"}) is None
        for n in (3, 4, 5):
            stop({"rows": n}, queue="mail")
        stop({"rows": 100}, queue="sms")
    assert reporter.value(rows, {"queue": "mail"}) == 12
    assert reporter.value(rows, {"queue": "sms"}) == 100
    assert reporter.value(latest, {"queue": "mail"}) == 5


def test_tag_values_keep_and_drop_apply_in_the_reporter() -> None:
    by_kind = counter(
        "app.job.stop.by_kind",
        tags=["kind"],
        tag_values=lambda meta: {"kind": type(meta["error"]).__name__},
        keep=lambda meta: "error" in meta,
    )
    not_mail = counter("app.job.stop.not_mail", drop=lambda meta: meta.get("queue") == "mail")
    with MemoryReporter([by_kind, not_mail]) as reporter:
        stop({}, queue="mail")
        stop({}, queue="sms", error=TimeoutError())
        stop({}, queue="sms", error=TimeoutError())
        stop({}, queue="mail", error=KeyError())
    assert reporter.series(by_kind) == {("TimeoutError",): 2, ("KeyError",): 1}
    assert reporter.value(not_mail) == 2


async def test_a_span_duration_in_milliseconds_on_the_mock_clock() -> None:
    metric = summary("app.job.stop.duration", tags=["queue"], unit=("second", "millisecond"))
    with MemoryReporter([metric]) as reporter:
        for seconds in (2.5, 0.5):
            async with telemetry.span(("app", "job"), {"queue": "mail"}):
                await asyncio.sleep(seconds)
    stats = reporter.value(metric, {"queue": "mail"})
    assert (stats.count, stats.sum, stats.min, stats.max, stats.mean) == (
        2,
        3000.0,
        500.0,
        2500.0,
        1500.0,
    )


def test_summary_statistics_and_quantiles() -> None:
    metric = summary("app.job.stop.duration")
    with MemoryReporter([metric]) as reporter:
        assert reporter.value(metric) is None
        for n in range(100, 0, -1):
            stop({"duration": n})
    stats = reporter.value(metric)
    assert isinstance(stats, SummaryStats)
    assert (stats.count, stats.sum, stats.min, stats.max, stats.mean) == (100, 5050, 1, 100, 50.5)
    assert stats.quantiles.keys() == {0.5, 0.9, 0.99}
    assert stats.quantiles[0.5] == pytest.approx(50.5)
    assert stats.quantiles[0.9] == pytest.approx(90.1)
    assert stats.quantiles[0.99] == pytest.approx(99.01)


def test_summary_quantiles_cover_the_most_recent_max_samples() -> None:
    metric = summary(
        "app.job.stop.duration", reporter_options={"max_samples": 4, "quantiles": [0, 1]}
    )
    with MemoryReporter([metric]) as reporter:
        for n in range(1, 11):
            stop({"duration": n})
    stats = reporter.value(metric)
    assert stats.quantiles == {0: 7, 1: 10}
    assert (stats.count, stats.min, stats.max) == (10, 1, 10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_samples": 0}, "max_samples must be a positive int"),
        ({"max_samples": 1.5}, "max_samples must be a positive int"),
        ({"quantiles": [0.5, 2]}, "quantiles must be numbers between 0 and 1"),
        ({"quantiles": "p99"}, "quantiles must be numbers between 0 and 1"),
    ],
)
def test_memory_reporter_validates_summary_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidMetric, match=message):
        MemoryReporter([summary("app.job.stop.duration", reporter_options=options)])


def test_distribution_counts_values_into_less_or_equal_buckets() -> None:
    metric = distribution("app.job.stop.duration", buckets=[0.1, 0.5, 1])
    with MemoryReporter([metric]) as reporter:
        assert reporter.value(metric) is None
        for value in (0.05, 0.1, 0.2, 0.5, 0.7, 1, 3, -1):
            stop({"duration": value})
    stats = reporter.value(metric)
    assert isinstance(stats, DistributionStats)
    assert stats.buckets == (0.1, 0.5, 1)
    assert stats.counts == (3, 2, 2, 1)
    assert stats.count == 8
    assert stats.sum == pytest.approx(4.55)
    assert stats.cumulative() == ((0.1, 3), (0.5, 5), (1, 7), (math.inf, 8))


def test_value_refuses_unknown_metrics_and_wrong_tags() -> None:
    reporter = MemoryReporter([counter("app.job.stop.count", tags=["queue"])])
    with pytest.raises(KeyError, match=r"no metric named 'app\.nope'"):
        reporter.value("app.nope")
    with pytest.raises(ValueError, match=r"tagged by \['queue'\]; got values for \[\]"):
        reporter.value("app.job.stop.count")
    with pytest.raises(ValueError, match="got values for"):
        reporter.value("app.job.stop.count", {"queue": "mail", "extra": 1})


def test_snapshot_and_reset() -> None:
    jobs = counter("app.job.stop.count", tags=["queue"])
    rows = sum("app.job.stop.rows")
    with MemoryReporter([jobs, rows]) as reporter:
        stop({"rows": 2}, queue="mail")
        stop({"rows": 3}, queue="sms")
        assert reporter.snapshot() == {
            "app.job.stop.count": {(("queue", "mail"),): 1, (("queue", "sms"),): 1},
            "app.job.stop.rows": {(): 5},
        }
        reporter.reset(jobs)
        assert reporter.snapshot() == {"app.job.stop.count": {}, "app.job.stop.rows": {(): 5}}
        reporter.reset()
        assert reporter.snapshot() == {"app.job.stop.count": {}, "app.job.stop.rows": {}}
        stop({"rows": 1}, queue="mail")
    assert reporter.value(rows) == 1


# -- a model -----------------------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["mail", "sms"]),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-1000, 1000),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_counter_sum_and_summary_agree_with_a_model(sequence: list[tuple[str, float]]) -> None:
    metrics = [
        counter("app.job.stop.count", tags=["queue"]),
        sum("app.job.stop.total", measurement="value", tags=["queue"]),
        summary("app.job.stop.value", tags=["queue"], reporter_options={"quantiles": [0.5, 0.9]}),
    ]
    with MemoryReporter(metrics) as reporter:
        for queue, value in sequence:
            stop({"value": value}, queue=queue)

    for queue in ("mail", "sms"):
        values = [value for q, value in sequence if q == queue]
        tags = {"queue": queue}
        total: float = 0
        for value in values:
            total += value
        assert reporter.value("app.job.stop.count", tags) == len(values)
        assert reporter.value("app.job.stop.total", tags) == total
        stats = reporter.value("app.job.stop.value", tags)
        if not values:
            assert stats is None
            continue
        assert (stats.count, stats.sum, stats.min, stats.max) == (
            len(values),
            total,
            min(values),
            max(values),
        )
        assert stats.mean == total / len(values)
        if len(values) >= 2:
            cuts = statistics.quantiles(values, n=10, method="inclusive")
            assert math.isclose(stats.quantiles[0.5], cuts[4], rel_tol=1e-9, abs_tol=1e-6)
            assert math.isclose(stats.quantiles[0.9], cuts[8], rel_tol=1e-9, abs_tol=1e-6)
        assert stats.min <= stats.quantiles[0.5] <= stats.quantiles[0.9] <= stats.max
