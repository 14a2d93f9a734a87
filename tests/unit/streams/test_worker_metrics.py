"""A worker's metrics: per-agent counts and the lag of its source partitions."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import generate_latest

from streams.metrics import PartitionCollector, WorkerMetrics


class TP(NamedTuple):
    topic: str
    partition: int


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_lag_is_the_high_watermark_past_the_committed_offset_of_source_partitions() -> None:
    metrics = WorkerMetrics()
    highwater = {TP("orders.requests", 0): 120, TP("orders.requests", 1): 7}
    committed = {TP("orders.requests", 0): 100, TP("orders.requests", 1): None}
    metrics.registry.register(
        PartitionCollector(
            sources=["orders.requests"],
            assignment=lambda: [*highwater, TP("x-changelog", 0), TP("orders.requests", 2)],
            highwater=lambda tp: highwater.get(tp),  # partition 2: no fetch has reported yet
            committed=lambda: committed,
            flags=lambda: {"rebalancing": True, "recovering": False},
        )
    )

    lag = "orderstream_worker_partition_lag"
    assert sample(metrics, lag, topic="orders.requests", partition="0") == 20
    assert sample(metrics, lag, topic="orders.requests", partition="1") == 7  # nothing committed
    assert sample(metrics, lag, topic="orders.requests", partition="2") is None
    assert sample(metrics, lag, topic="x-changelog", partition="0") is None
    assigned = "orderstream_worker_assigned_partitions"
    assert sample(metrics, assigned, topic="orders.requests") == 3
    assert sample(metrics, "orderstream_worker_state", state="rebalancing") == 1


def test_a_consumer_that_is_not_started_yields_no_partitions() -> None:
    def not_started() -> list[TP]:
        raise AttributeError("consumer")

    metrics = WorkerMetrics()
    metrics.registry.register(
        PartitionCollector(["t"], not_started, lambda tp: None, dict, lambda: {})
    )
    assert b"orderstream_worker_partition_lag" in generate_latest(metrics.registry)  # scraped
    assert sample(metrics, "orderstream_worker_assigned_partitions", topic="t") is None


def test_batches_count_events_and_time_per_agent_and_delivered_records_per_topic() -> None:
    metrics = WorkerMetrics()
    with metrics.batch("reserve_stock", 40):
        pass
    with metrics.batch("reserve_stock", 2):
        pass
    metrics.count_delivered("orders.committed", 5)

    assert sample(metrics, "orderstream_worker_events_total", agent="reserve_stock") == 42
    count = "orderstream_worker_batch_seconds_count"
    assert sample(metrics, count, agent="reserve_stock") == 2
    assert sample(metrics, "orderstream_worker_records_out_total", topic="orders.committed") == 5
