"""Read a whole topic, from its beginning to the end it had when reading started."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 120.0) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` up to its current end offsets, partition by partition order.

    No consumer group: nothing is committed and no other consumer is disturbed."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {timeout_s}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                yield from (r for r in records if r.offset < end[tp])
    finally:
        consumer.close()


def log_starts(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's first offset still held: above 0 once retention deleted records."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        starts = consumer.beginning_offsets(partitions) if partitions else {}
        return {tp.partition: offset for tp, offset in starts.items()}
    finally:
        consumer.close()
