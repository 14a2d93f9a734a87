"""A sink that lost its shard lock stops: no retry, no final flush, the buffer dropped
(its offsets were not advanced). The lock check itself runs against real PostgreSQL in
tests/integration/sinks/test_shard_lock.py."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from sinks.consumer import SinkConsumer
from sinks.exceptions import LockLost
from sinks.records import ConsumedRecord

TP = TopicPartition("orders.committed", 0)


class OneRecordConsumer:
    """Just the KafkaConsumer surface SinkConsumer.run touches: one record, then nothing."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.polls += 1
        if self.polls > 1:
            return {}
        record = SimpleNamespace(
            topic=TP.topic, partition=0, offset=7, key=b"o1", value=b"{}", headers=[]
        )
        return {TP: [record]}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass


class LostLockSink:
    def __init__(self) -> None:
        self.buffer: list[ConsumedRecord] = []
        self.flushes = 0

    def add(self, record: ConsumedRecord) -> None:
        self.buffer.append(record)

    def __len__(self) -> int:
        return len(self.buffer)

    def buffered(self) -> list[ConsumedRecord]:
        return list(self.buffer)

    def discard(self) -> None:
        self.buffer.clear()

    def flush(self) -> None:
        self.flushes += 1
        raise LockLost("sink lock 'x' lost")


def test_lock_lost_stops_the_sink_at_once(caplog: pytest.LogCaptureFixture) -> None:
    sink = LostLockSink()
    stop = threading.Event()
    runner = SinkConsumer(
        OneRecordConsumer(),  # type: ignore[arg-type]
        sink,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
        consumer_name="test.sink",
        batch_size=1,
        batch_timeout_s=0.01,
        stop=stop,
    )
    with caplog.at_level(logging.CRITICAL, logger="sinks.consumer"):
        with pytest.raises(LockLost):
            runner.run()
    assert sink.flushes == 1, "retried after losing the lock"
    assert len(sink) == 0
    assert stop.is_set()
    assert runner.flush_failures == 0
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
