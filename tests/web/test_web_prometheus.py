"""The Prometheus reporter, and GET /metrics fed by telemetry."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from web_helpers import node_client

from trunkline import otp
from trunkline.notify.telemetry import emit_delivery
from trunkline.otp.metrics import counter, distribution, last_value, sum, summary
from trunkline.web import PrometheusReporter

EVENT = ("test", "prometheus", "stop")


def samples(text: bytes | str) -> list[Sample]:
    body = text.decode() if isinstance(text, bytes) else text
    return [sample for family in text_string_to_metric_families(body) for sample in family.samples]


def value(all_samples: list[Sample], name: str, **labels: str) -> float | None:
    for sample in all_samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def test_each_kind_of_definition_becomes_its_prometheus_metric() -> None:
    reporter = PrometheusReporter(
        [
            counter("test.prometheus.stop.count", tags=["queue"], description="Stops"),
            sum("test.prometheus.stop.bytes", tags=["queue"]),
            sum(
                "test.prometheus.stop.rows",
                reporter_options={"prometheus_type": "counter", "prometheus_name": "rows"},
            ),
            last_value("test.prometheus.stop.depth", tags=["queue"]),
            summary("test.prometheus.stop.duration", unit=("second", "millisecond")),
            distribution("test.prometheus.stop.size", buckets=[1, 10], tags=["queue"]),
        ]
    )
    with reporter:
        for queue, size, depth in (("mail", 5, 3), ("mail", 50, 2), ("web", 1, 7)):
            otp.telemetry.execute(
                EVENT,
                {"bytes": size, "rows": 2, "depth": depth, "duration": 0.5, "size": size},
                {"queue": queue},
            )
    after_stop = samples(reporter.render())
    otp.telemetry.execute(EVENT, {"bytes": 1}, {"queue": "mail"})  # detached: not counted
    text = reporter.render().decode()
    assert samples(text) == after_stop
    assert "# HELP test_prometheus_stop_count_total Stops" in text
    assert "# TYPE test_prometheus_stop_bytes gauge" in text
    assert "# TYPE rows_total counter" in text
    assert "# TYPE test_prometheus_stop_duration summary" in text
    assert "# TYPE test_prometheus_stop_size histogram" in text
    s = samples(text)
    assert value(s, "test_prometheus_stop_count_total", queue="mail") == 2
    assert value(s, "test_prometheus_stop_count_total", queue="web") == 1
    assert value(s, "test_prometheus_stop_bytes", queue="mail") == 55
    assert value(s, "rows_total") == 6
    assert value(s, "test_prometheus_stop_depth", queue="mail") == 2
    assert value(s, "test_prometheus_stop_duration_count") == 3
    assert value(s, "test_prometheus_stop_duration_sum") == 1500.0  # converted to ms
    assert value(s, "test_prometheus_stop_size_bucket", queue="mail", le="1.0") == 0
    assert value(s, "test_prometheus_stop_size_bucket", queue="mail", le="10.0") == 1
    assert value(s, "test_prometheus_stop_size_bucket", queue="mail", le="+Inf") == 2
    assert value(s, "test_prometheus_stop_size_count", queue="web") == 1
    # Its own registry: nothing in prometheus-client's global one.
    assert REGISTRY.get_sample_value("test_prometheus_stop_count_total", {"queue": "mail"}) is None


def test_definitions_prometheus_cannot_use_are_refused() -> None:
    with pytest.raises(otp.InvalidMetric, match="not a Prometheus metric name"):
        PrometheusReporter([counter("test.prometheus.stop.count-x")])
    with pytest.raises(otp.InvalidMetric, match="prometheus_type is for sum metrics"):
        PrometheusReporter(
            [counter("test.prometheus.stop.count", reporter_options={"prometheus_type": "gauge"})]
        )
    with pytest.raises(otp.InvalidMetric, match="Duplicated timeseries"):
        PrometheusReporter(
            [
                last_value("test.prometheus.stop.a", reporter_options={"prometheus_name": "x"}),
                last_value("test.prometheus.stop.b", reporter_options={"prometheus_name": "x"}),
            ]
        )


@pytest.mark.real_clock
async def test_metrics_count_requests_by_method_route_and_status(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (_, client):
        for _ in range(3):
            assert (await client.get("/healthz")).status == 200
        assert (await client.get("/missing/1")).status == 404
        assert (await client.get("/missing/2")).status == 404
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        s = samples(await response.text())
    assert (
        value(s, "trunkline_http_requests_total", method="GET", route="/healthz", status="200") == 3
    )
    # Unknown paths share one label value, whatever the path.
    assert (
        value(s, "trunkline_http_requests_total", method="GET", route="unmatched", status="404")
        == 2
    )
    assert (
        value(s, "trunkline_http_request_duration_seconds_count", route="/healthz", status="200")
        == 3
    )
    assert value(s, "trunkline_vm_processes") is not None
    assert (value(s, "trunkline_vm_tasks") or 0) >= 1
    assert value(s, "process_resident_memory_bytes") is not None


async def test_notification_deliveries_are_counted_by_channel_and_suppressions_by_why(
    tmp_path: Path,
) -> None:
    async with node_client(tmp_path) as (_, client):
        for status, channel, reason in [
            ("queued", "email", None),
            ("sent", "email", None),
            ("sent", "email", None),
            ("failed", "webhook", "a 400"),
            ("suppressed", "email", "preference"),
            ("suppressed", "sms", "no_address"),
        ]:
            emit_delivery(
                status, delivery_id=1, category="chat.mention", channel=channel, reason=reason
            )
        s = samples(await (await client.get("/metrics")).text())
    assert value(s, "trunkline_notify_deliveries_sent_total", channel="email") == 2
    assert value(s, "trunkline_notify_deliveries_queued_total", channel="email") == 1
    assert value(s, "trunkline_notify_deliveries_failed_total", channel="webhook") == 1
    suppressed = "trunkline_notify_deliveries_suppressed_total"
    assert value(s, suppressed, channel="sms", category="chat.mention", reason="no_address") == 1
    assert value(s, suppressed, channel="email", category="chat.mention", reason="preference") == 1
