"""The sink's and the relay's metrics: the counters their loops keep, and the sink's lag."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from sinks.consumer import SinkConsumer
from sinks.metrics import RelayCollector, SinkCollector
from sinks.relay import RelayStats

COMMITTED = [TopicPartition("orders.committed", p) for p in range(3)]


def registry_of(collector: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_sink_lag_is_the_high_watermark_past_what_postgresql_holds() -> None:
    highwater = {COMMITTED[0]: 50, COMMITTED[1]: 9, COMMITTED[2]: None}
    kafka = SimpleNamespace(assignment=lambda: set(highwater), highwater=highwater.get)
    runner = SinkConsumer(kafka, None, None, "sink", 500, 0.05)  # type: ignore[arg-type]
    runner.written_offsets = {("orders.committed", 0): 40, ("orders.committed", 1): 9}
    sink = SimpleNamespace(written=120, batches=7, dead_lettered=1)
    runner.flush_failures = 2

    registry = registry_of(SinkCollector(sink, runner))  # type: ignore[arg-type]

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    lag = "orderstream_sink_partition_lag"
    assert value(lag, topic="orders.committed", partition="0") == 10
    assert value(lag, topic="orders.committed", partition="1") == 0
    assert value(lag, topic="orders.committed", partition="2") is None  # end not reported yet
    assert value("orderstream_sink_records_written_total") == 120
    assert value("orderstream_sink_batches_total") == 7
    assert value("orderstream_sink_dead_letters_total") == 1
    assert value("orderstream_sink_flush_failures_total") == 2


def test_relay_counters() -> None:
    relay = SimpleNamespace(stats=RelayStats(sent=30, rounds=4, failures=1))
    registry = registry_of(RelayCollector(relay))  # type: ignore[arg-type]
    assert registry.get_sample_value("orderstream_relay_events_sent_total") == 30
    assert registry.get_sample_value("orderstream_relay_rounds_total") == 4
    assert registry.get_sample_value("orderstream_relay_failures_total") == 1
