"""OpenTelemetry traces across the pipeline: off unless ``ORDERSTREAM_TRACING`` names an exporter.

One order's trace: the ingress's request span (the ASGI instrumentation) and its produce
spans (the aiokafka instrumentation, which puts W3C ``traceparent`` in each
``orders.requests`` record's headers) → the stock agent's span per line and the settler's
per order, each passing its context on in the headers of what it emits → the sink's span
per order, whose context is stored with the order's outbox rows → the relay's span per
published event, whose context rides in the event's headers so a consumer can go on.

``ORDERSTREAM_TRACING``: ``off`` (the default: no SDK is loaded, every helper here is a
no-op), ``otlp`` (OTLP over HTTP; the standard ``OTEL_EXPORTER_OTLP_*`` variables say
where) or ``console`` (spans as JSON on stdout). Sampling follows ``OTEL_TRACES_SAMPLER``
(parent-based, always on, unless told). Needs the ``traces`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from orderstream.core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MODES = ("off", "otlp", "console")

#: Kafka record headers, as aiokafka and kafka-python hand them over (Faust allows a mapping)
Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes]

_tracer: Tracer | None = None


def configure(settings: Settings, service: str, exporter: SpanExporter | None = None) -> bool:
    """Install the SDK for this process when ``settings.tracing`` (or ``exporter``, for
    tests) asks for it; whether traces are now on. ``service``: ``ingress``, ``worker``, ...
    """
    global _tracer
    mode = settings.tracing
    if mode not in MODES:
        raise ValueError(f"ORDERSTREAM_TRACING={mode!r}: one of {', '.join(MODES)}")
    if exporter is None and mode == "off":
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:  # pragma: no cover - the extra is part of every install here
        missing = "OpenTelemetry is missing: pip install 'orderstream[traces]'"
        raise RuntimeError(f"ORDERSTREAM_TRACING={mode} but {missing}") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": f"orderstream-{service}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("orderstream")
    logger.info("traces on: %s, exporting %s", f"orderstream-{service}", exporter or mode)
    return True


def reset() -> None:
    """Traces off again in this process (tests)."""
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def parent_of(headers: Headers | None) -> Any:
    """The context ``headers`` carry (a ``traceparent``), or None."""
    if _tracer is None or not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {k: v.decode("latin-1") for k, v in pairs if k in (TRACEPARENT, TRACESTATE) and v}
    if TRACEPARENT not in carrier:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier)


def headers_of(span: Span | None) -> list[tuple[str, bytes]] | None:
    """Headers that carry ``span``'s context to the next program, or None."""
    value = traceparent_of(span)
    return None if value is None else [(TRACEPARENT, value.encode("ascii"))]


def traceparent_of(span: Span | None) -> str | None:
    """``span``'s W3C ``traceparent`` (stored with the outbox rows), or None."""
    if span is None:
        return None
    from opentelemetry.trace import set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def start(
    name: str, headers: Headers | None, kind: str = "CONSUMER", **attributes: Any
) -> Span | None:
    """A span continuing the trace ``headers`` carry; None when traces are off or the
    record carries none (an order from before traces were turned on starts no new trace).
    The caller ends it."""
    parent = parent_of(headers)
    if parent is None or _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    attrs = {k: v for k, v in attributes.items() if v is not None}
    return _tracer.start_span(name, context=parent, kind=SpanKind[kind], attributes=attrs)


def step(
    name: str, headers: Headers | None, **attributes: Any
) -> AbstractContextManager[Span | None]:
    """``start`` around a block; the span (or None) to pass on with ``headers_of``. With
    traces off, one shared no-op context: nothing is allocated per record."""
    if _tracer is None:
        return _NO_SPAN
    return _step(name, headers, attributes)


_NO_SPAN: AbstractContextManager[None] = nullcontext(None)


@contextmanager
def _step(name: str, headers: Headers | None, attributes: dict[str, Any]) -> Iterator[Span | None]:
    span = start(name, headers, **attributes)
    try:
        yield span
    finally:
        if span is not None:
            span.end()


def traceparent_headers(value: str | None) -> list[tuple[str, bytes]] | None:
    """Headers for a stored ``traceparent``."""
    return None if not value else [(TRACEPARENT, value.encode("ascii"))]


def instrument_asgi(app: Any) -> Any:
    """``app`` behind the ASGI instrumentation (a server span per request) and the aiokafka
    producer instrumented (a produce span per record, ``traceparent`` in its headers), when
    traces are on; else ``app`` itself. Falcon's own instrumentation covers WSGI apps only."""
    if _tracer is None:
        return app
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    AIOKafkaInstrumentor().instrument()
    return OpenTelemetryMiddleware(app, excluded_urls="livez,readyz,metrics")
