"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` is set by ``ingress/gunicorn_conf.py`` before workers start;
each worker writes its own files and ``/metrics`` merges them. Single-process (tests,
``python -m``) falls back to the default registry.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "ingress_http_requests_total",
    "HTTP requests by route, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "ingress_http_request_duration_seconds",
    "HTTP request latency by route and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ORDERS_ACCEPTED = Counter("ingress_orders_accepted_total", "Orders answered 202 (first time)")
ORDERS_REPLAYED = Counter("ingress_orders_replayed_total", "Idempotent retries answered from Redis")
ORDERS_REFUSED = Counter(
    "ingress_orders_refused_total",
    "Orders refused at the door by the sold-out gate (409), by reason",
    ["reason"],
)
PUBLISH_FAILURES = Counter(
    "ingress_publish_failures_total", "Orders answered 503 because Kafka did not ack"
)


class MetricsMiddleware:
    async def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    async def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or "unmatched"
        LATENCY.labels(route, req.method).observe(time.perf_counter() - started)
        REQUESTS.labels(route, req.method, str(resp.status_code)).inc()


class MetricsResource:
    auth = {"GET": "public"}

    def __init__(self, multiproc_dir: str | None) -> None:
        self._multiproc_dir = multiproc_dir

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._multiproc_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiproc_dir)
        else:
            registry = REGISTRY
        resp.data = generate_latest(registry)
        resp.content_type = CONTENT_TYPE_LATEST
