"""``GET /metrics``: the node's metrics in the Prometheus text format, fed by telemetry.

:func:`default_metrics` are the definitions every node reports (documented, with their
Prometheus names, in ``docs/server.md``): HTTP requests (from the span every request runs in,
:data:`REQUEST_EVENT`), jobs (``trunkline.jobs``' job and queue events), notification
deliveries (``trunkline.notify``'s delivery events) and the runtime's own
figures (:data:`VM_EVENT`, measured from ``trunkline.otp``'s introspection on each scrape). The
registry also holds prometheus-client's process and garbage-collector collectors.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from trunkline import otp
from trunkline.otp.metrics import Metric, counter, distribution, last_value

from .openapi import Api
from .prometheus import CONTENT_TYPE, PrometheusReporter

__all__ = [
    "DURATION_BUCKETS_S",
    "JOB_QUEUE_STATES",
    "METRICS",
    "NOTIFY_DELIVERY_STATUSES",
    "REQUEST_EVENT",
    "VM_EVENT",
    "add_metrics_route",
    "default_metrics",
    "emit_vm_stats",
    "make_reporter",
]

REQUEST_EVENT: otp.telemetry.Event = ("trunkline", "web", "request")
"""The span prefix of every HTTP request: ``start``, then ``stop`` (or ``exception``).

Metadata: ``method``, ``route`` (the route's pattern, ``/rooms/{id}``; ``unmatched`` when no
route matched), ``request_id``, and on stop ``status``."""

VM_EVENT: otp.telemetry.Event = ("trunkline", "vm", "stats")
"""Executed on each scrape: ``process_count``, ``mailbox_messages`` (waiting in every process's
mailbox), ``task_count`` (asyncio tasks of the loop)."""

DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

JOB_QUEUE_STATES = ("available", "scheduled", "executing", "retryable", "running", "limit")
"""The measurements of the jobs' queue event reported as gauges, per queue."""

NOTIFY_DELIVERY_STATUSES = ("queued", "sent", "delivered", "failed", "retrying", "suppressed")
"""The notification delivery events counted, per channel (``suppressed`` also by reason)."""

METRICS: web.AppKey[PrometheusReporter] = web.AppKey("trunkline.web.metrics")


def default_metrics() -> list[Metric]:
    """The metric definitions of every node (see ``docs/server.md``)."""
    request_tags = ["method", "route", "status"]
    metrics: list[Metric] = [
        counter(
            "trunkline.web.request.stop.count",
            tags=request_tags,
            description="HTTP requests answered",
            reporter_options={"prometheus_name": "trunkline_http_requests"},
        ),
        distribution(
            "trunkline.web.request.stop.duration",
            buckets=DURATION_BUCKETS_S,
            tags=request_tags,
            unit="second",
            description="Time to answer an HTTP request",
            reporter_options={"prometheus_name": "trunkline_http_request_duration_seconds"},
        ),
        counter(
            "trunkline.jobs.job.stop.count",
            tags=["queue", "state"],
            description="Job attempts ended, by the state they left the job in",
            reporter_options={"prometheus_name": "trunkline_jobs_attempts"},
        ),
        distribution(
            "trunkline.jobs.job.stop.duration",
            buckets=DURATION_BUCKETS_S,
            tags=["queue", "state"],
            unit="second",
            description="Time a job attempt ran",
            reporter_options={"prometheus_name": "trunkline_jobs_attempt_duration_seconds"},
        ),
        distribution(
            "trunkline.jobs.job.stop.queue_time",
            buckets=DURATION_BUCKETS_S,
            tags=["queue"],
            unit="second",
            description="Time from when a job was due to when it was fetched",
            reporter_options={"prometheus_name": "trunkline_jobs_queue_time_seconds"},
        ),
        counter(
            "trunkline.jobs.job.exception.count",
            tags=["queue", "kind"],
            description="Job attempts that raised, timed out or were stopped",
            reporter_options={"prometheus_name": "trunkline_jobs_exceptions"},
        ),
    ]
    metrics += [
        last_value(
            f"trunkline.jobs.queue.stats.{state}",
            tags=["queue"],
            description=f"Jobs of the queue: {state}"
            if state not in ("running", "limit")
            else f"This node's {state} of the queue",
            reporter_options={"prometheus_name": f"trunkline_jobs_queue_{state}"},
        )
        for state in JOB_QUEUE_STATES
    ]
    metrics += [
        counter(
            f"trunkline.notify.delivery.{status}.count",
            tags=["channel", "category", "reason"] if status == "suppressed" else ["channel"],
            description=f"Notification deliveries {status}"
            + (" (by why)" if status == "suppressed" else ""),
            reporter_options={"prometheus_name": f"trunkline_notify_deliveries_{status}"},
        )
        for status in NOTIFY_DELIVERY_STATUSES
    ]
    metrics += [
        last_value(
            "trunkline.vm.stats.process_count",
            description="trunkline.otp processes alive on this node",
            reporter_options={"prometheus_name": "trunkline_vm_processes"},
        ),
        last_value(
            "trunkline.vm.stats.mailbox_messages",
            description="Messages waiting in every process's mailbox",
            reporter_options={"prometheus_name": "trunkline_vm_mailbox_messages"},
        ),
        last_value(
            "trunkline.vm.stats.task_count",
            description="asyncio tasks of the node's event loop",
            reporter_options={"prometheus_name": "trunkline_vm_tasks"},
        ),
    ]
    return metrics


def make_reporter(metrics: list[Metric] | None = None) -> PrometheusReporter:
    """A reporter of ``metrics`` (default: :func:`default_metrics`), with prometheus-client's
    process, platform and garbage-collector collectors in its registry. Not started."""
    reporter = PrometheusReporter(default_metrics() if metrics is None else metrics)
    ProcessCollector(registry=reporter.registry)
    PlatformCollector(registry=reporter.registry)
    GCCollector(registry=reporter.registry)
    return reporter


def emit_vm_stats() -> None:
    """Execute :data:`VM_EVENT` with the node's current figures (when anyone listens)."""
    if not otp.telemetry.has_handlers(VM_EVENT):
        return
    processes = otp.list_processes()
    otp.telemetry.execute(
        VM_EVENT,
        {
            "process_count": len(processes),
            "mailbox_messages": sum(info.mailbox_length for info in processes),
            "task_count": len(asyncio.all_tasks()),
        },
    )


def add_metrics_route(api: Api) -> None:
    """Declare ``GET /metrics`` on ``api``: the reporter of the app (``app[METRICS]``)."""

    @api.route(
        "GET", "/metrics", summary="Metrics, in the Prometheus text format", tags=["operations"]
    )
    async def metrics(request: web.Request) -> web.Response:
        emit_vm_stats()
        body = request.app[METRICS].render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
