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
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, timestamp: None, key: bytes | None, value: bytes | None) -> object:
        self.records.append((key, value))
        return object()


class _Producer:
    def __init__(self) -> None:
        self.client = _Client()
        self.sent: list[tuple[str, int, bool]] = []  # (topic, partition, tracked when sent)

    def create_batch(self) -> _Batch:
        return _Batch()

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
