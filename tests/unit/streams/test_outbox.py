"""The Outbox has the producer's client track a topic before any batch goes to it.

aiokafka refreshes metadata only for the topics a client tracks (all topics while it tracks
none), so a batch queued for a topic the client knows but does not track loses its leader
at the next refresh once any other topic is tracked (the real-broker case is
``tests/integration/streams/test_outbox_metadata.py``). A fake producer records what the
client tracked when each batch was handed over.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from streams.faustutil import Outbox


class _Client:
    def __init__(self) -> None:
        self.tracked: list[str] = []  # every add_topic call, in order

    def add_topic(self, topic: str) -> asyncio.Future[bool]:
        self.tracked.append(topic)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done


class _Batch:
    """aiokafka's own batch builder, which checks what it is given as the producer's does."""

    def __init__(self) -> None:
        self.builder = BatchBuilder(16384, 0)
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []

    def append(
        self, *, timestamp: None, key: bytes | None, value: bytes | None, headers: Any
    ) -> Any:
        self.records.append((key, value, headers))
        return self.builder.append(timestamp=timestamp, key=key, value=value, headers=headers)


class _Producer:
    def __init__(self) -> None:
        self.client = _Client()
        self.sent: list[tuple[str, int, bool]] = []  # (topic, partition, tracked when sent)
        self.batches: list[_Batch] = []

    def create_batch(self) -> _Batch:
        self.batches.append(_Batch())
        return self.batches[-1]

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, topic in self.client.tracked))
        acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(offset=0))
        return acked


def _outbox(producer: _Producer, topics: tuple[str, ...] = ()) -> Outbox:
    return Outbox(
        SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer)), topics=topics
    )


async def test_every_topic_is_tracked_before_its_first_batch() -> None:
    producer = _Producer()
    outbox = _outbox(producer)
    outbox.add("changelog", b"k", b"v", partition=1)
    outbox.add("reservations", b"order-1", b"v")  # keyed: the partitioner picks
    await outbox.flush()
    assert {topic for topic, _, _ in producer.sent} == {"changelog", "reservations"}
    assert all(tracked for _, _, tracked in producer.sent)


async def test_the_first_flush_tracks_every_topic_the_worker_writes_and_later_ones_only_new() -> (
    None
):
    producer = _Producer()
    outbox = _outbox(producer, topics=("committed", "changelog"))
    outbox.add("changelog", b"k", b"v", partition=0)
    await outbox.flush()
    assert sorted(producer.client.tracked) == ["changelog", "committed"]
    outbox.add("committed", b"k", b"v", partition=0)
    await outbox.flush()
    assert sorted(producer.client.tracked) == ["changelog", "committed"]  # nothing asked again
    outbox.add("deadletter", b"k", b"v", partition=0)
    await outbox.flush()
    assert producer.client.tracked[-1] == "deadletter"
    assert producer.sent[-1] == ("deadletter", 0, True)


async def test_records_reach_the_batch_with_their_headers_or_none() -> None:
    producer = _Producer()
    outbox = _outbox(producer)
    traceparent = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    outbox.add("committed", b"traced", b"v", partition=0, headers=traceparent)
    outbox.add("committed", b"untraced", b"v", partition=0)
    await outbox.flush()
    (batch,) = producer.batches
    assert batch.records == [(b"traced", b"v", traceparent), (b"untraced", b"v", None)]
