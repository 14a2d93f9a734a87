"""The trace helpers: off, they do nothing; on, each step continues the trace its record's
headers carry and hands its own context on (the in-memory exporter holds what was made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orderstream.core import tracing
from orderstream.core.settings import Settings


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(Settings(), "test", exporter=exporter)
    yield exporter
    tracing.reset()


def test_off_by_default_nothing_is_traced_and_no_header_is_added() -> None:
    assert not tracing.configure(Settings(), "test")
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    with tracing.step("reserve_stock", headers) as span:
        assert span is None
    assert tracing.headers_of(span) is None


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="ORDERSTREAM_TRACING"):
        tracing.configure(Settings(tracing="jaeger"), "test")


def test_each_step_is_a_child_of_the_last_and_passes_its_context_on(
    spans: InMemorySpanExporter,
) -> None:
    root = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.step("reserve_stock", [("traceparent", root.encode())], order_id="o1") as first:
        pass
    with tracing.step("settle_orders", tracing.headers_of(first)) as second:
        pass
    stored = tracing.traceparent_of(second)  # what the sink keeps with the outbox row
    span = tracing.start("send orders.shipped", tracing.traceparent_headers(stored))
    assert span is not None
    span.end()

    made = {s.name: s for s in spans.get_finished_spans()}
    assert list(made) == ["reserve_stock", "settle_orders", "send orders.shipped"]
    assert {format(s.context.trace_id, "032x") for s in made.values()} == {
        "0af7651916cd43dd8448eb211c80319c"
    }
    assert format(made["reserve_stock"].parent.span_id, "016x") == "b7ad6b7169203331"
    assert made["settle_orders"].parent.span_id == made["reserve_stock"].context.span_id
    assert made["send orders.shipped"].parent.span_id == made["settle_orders"].context.span_id
    assert made["reserve_stock"].attributes["order_id"] == "o1"


def test_a_record_without_a_trace_starts_none(spans: InMemorySpanExporter) -> None:
    with tracing.step("reserve_stock", [("other", b"x")]) as span:
        assert span is None
    assert tracing.start("sink", None) is None
    assert spans.get_finished_spans() == ()
