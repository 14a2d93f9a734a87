"""The stage reader on the real broker: earliest timestamp per key, from a time on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from bench.stages import first_times


def test_first_times_keeps_each_keys_earliest_record_at_or_after_the_start(
    stack: Any, topic_factory: Callable[..., str]
) -> None:
    bootstrap = stack.settings.kafka_bootstrap
    committed, rejected = topic_factory("committed", partitions=2), topic_factory("rejected")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sends = [
        (committed, b"old", 1_000),  # before the start: not read
        (committed, b"a", 5_000),
        (committed, b"a", 4_000),  # the same key again, earlier
        (rejected, b"b", 6_000),
        (rejected, None, 7_000),  # no key: not an order's record
    ]
    for topic, key, ts in sends:
        producer.send(topic, key=key, value=b"{}", timestamp_ms=ts)
    producer.flush()
    producer.close()

    assert first_times(bootstrap, (committed, rejected), since_ms=3_000) == {"a": 4_000, "b": 6_000}
