"""The workers' Outbox on a real broker: no batch is stranded by the producer's metadata.

An aiokafka client refreshes metadata for the topics it tracks, or for every topic while it
tracks none, and starts tracking a topic only when a send finds it unknown. A worker's
producer learns every topic from the all-topics refresh Faust runs after declaring its
changelogs, so it tracked none; on a freshly cleaned stack the first write to a topic that
refresh missed (the settler's changelog, first written by a multi-line order) made it track
that one topic, and the next refresh dropped all the others: batches already queued for
them had no leader until the producer's 20-minute request timeout, and the stock agent
waiting on one stopped processing (its watchdog fired).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer

from orderstream.stack.testing import StackHandle
from streams import faustutil
from streams.faustutil import Outbox

DELIVERY_S = 10.0


async def test_a_batch_queued_for_a_known_topic_is_delivered_after_a_new_topic_is_written(
    stack: StackHandle, topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failed: list[asyncio.Future[object]] = []

    def record_failure(future: asyncio.Future[object]) -> None:  # a worker exits here
        if future.cancelled() or future.exception() is not None:
            failed.append(future)

    monkeypatch.setattr(faustutil, "_exit_on_failure", record_failure)
    known = topic_factory("known")
    # a long linger keeps the first batch queued while the producer learns the new topic
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, linger_ms=1500)
    await producer.start()
    try:
        await producer.client.force_metadata_update()  # every topic, as after Faust's declare
        app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        outbox = Outbox(app)
        outbox.add(known, b"k", b"queued first", partition=0)
        await outbox.flush()
        new = topic_factory("new")  # created after the producer's last refresh
        outbox.add(new, b"k", b"first write to a new topic", partition=0)
        await outbox.flush()
        # what an offset commit waits for; a stranded batch never arrives
        await asyncio.wait_for(producer.flush(), DELIVERY_S)
    finally:
        await producer.stop()
    assert failed == []
