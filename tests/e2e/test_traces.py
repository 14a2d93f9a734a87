"""With traces on, one order is one trace from its POST to its shipped event.

The stack is brought up again as an operator turns traces on (``ORDERSTREAM_TRACING=otlp``
and the OTLP endpoint, then ``make up``), exporting over real OTLP/HTTP to a receiver this
test runs on loopback; afterwards it is brought up again untraced. For a single-line order
(settled in its product's partition) and a multi-line one (through ``orders.reservations``
and the settler), the spans the ingress, a worker, the sink and the relay exported form one
chain: each span's parent is the one before, up to the ingress's request span, and the
shipped event a consumer reads carries the relay's span in its ``traceparent``.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kafka import KafkaConsumer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from orderstream.client import OrderstreamClient
from schemas import topics
from tests.chaos.stackctl import LocalStack
from tests.e2e.records import consumer_at_end


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


class OtlpReceiver:
    """The OTLP/HTTP trace endpoint of a collector, keeping what it is sent."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    exported = ExportedSpan(
                        service=resource.get("service.name", ""),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: a.value.string_value for a in span.attributes},
                    )
                    with self._lock:
                        self.spans.append(exported)

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def stack_up(extra: dict[str, str]) -> None:
    """``make up`` as an operator runs it, with ``extra`` in the environment (and without
    any tracing variable this test's own environment has)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "ORDERSTREAM_TRACING" and not k.startswith("OTEL_")
    }
    command = [str(LocalStack().cfg.venv_bin / "orderstream"), "stack", "up"]
    subprocess.run(command, env={**env, **extra}, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def receiver(stack) -> Iterator[OtlpReceiver]:
    if stack.kind == "testcontainers":
        pytest.skip("turns traces on in the supervised local stack's programs")
    otlp = OtlpReceiver()
    try:
        stack_up(
            {
                "ORDERSTREAM_TRACING": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
                "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans leave soon after they end
            }
        )
        yield otlp
    finally:
        stack_up({})  # untraced again, as the other tests expect it
        otlp.close()


@pytest.fixture
def shipped_reader(stack) -> Iterator[KafkaConsumer]:
    consumer = consumer_at_end(
        stack.settings.topics(topics.ORDERS_SHIPPED), stack.settings.kafka_bootstrap, "traced"
    )
    yield consumer
    consumer.close()


def shipped_traceparent(consumer: KafkaConsumer, order_id: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key == order_id.encode():
                    headers = dict(record.headers or [])
                    assert "traceparent" in headers, f"shipped event of {order_id} untraced"
                    return headers["traceparent"].decode()
    raise AssertionError(f"no shipped event for {order_id} in {timeout_s}s")


def chain_to_root(spans: list[ExportedSpan], last: str) -> list[ExportedSpan]:
    """From the span ``last`` up its parents to the root: root first."""
    by_id = {s.span_id: s for s in spans}
    chain = []
    span_id = last
    while span_id in by_id:
        chain.append(by_id[span_id])
        span_id = by_id[span_id].parent_id
    assert span_id in ("", "0" * 16), f"the chain breaks at span {span_id}: not exported"
    return chain[::-1]


@pytest.mark.parametrize("lines", [1, 2], ids=["single-line", "multi-line"])
def test_an_order_is_one_trace_from_its_post_to_its_shipped_event(
    receiver: OtlpReceiver,
    stack,
    api: OrderstreamClient,
    stocked,
    shipped_reader: KafkaConsumer,
    lines: int,
) -> None:
    products = [stocked(f"traced-{n}", 10) for n in range(lines)]
    order_id = api.post_order("traced-buyer", [(p, 1) for p in products])
    assert api.wait_terminal(order_id)["status"] == "shipped"
    _, trace_id, relay_span, _ = shipped_traceparent(shipped_reader, order_id).split("-")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = receiver.trace(trace_id)
        if any(s.span_id == relay_span for s in spans) and any(
            s.parent_id in ("", "0" * 16) for s in spans
        ):
            break
        time.sleep(0.3)
    chain = chain_to_root(receiver.trace(trace_id), relay_span)

    steps = [(s.service, s.name) for s in chain]
    requests = stack.settings.topics(topics.ORDER_REQUESTS)
    shipped = stack.settings.topics(topics.ORDERS_SHIPPED)
    # the request span (ASGI instrumentation) and a line's produce span (aiokafka's), the
    # decisions, the sink's write and the relay's send
    assert steps[0][0] == "orderstream-ingress" and steps[0][1].startswith("POST"), steps
    assert steps[1][0] == "orderstream-ingress" and requests in steps[1][1], steps
    decisions = ["reserve_stock"] if lines == 1 else ["reserve_stock", "settle_orders"]
    assert steps[2:] == [
        *(("orderstream-worker", name) for name in decisions),
        ("orderstream-sink", "sink"),
        ("orderstream-relay", f"send {shipped}"),
    ], steps
    assert {s.attributes.get("order_id") for s in chain[2:]} == {order_id}
    # every line's stock decision is in the trace
    decided = [s for s in receiver.trace(trace_id) if s.name == "reserve_stock"]
    assert len(decided) == lines
