"""The one place that reaches into Faust internals.

``stream.take_events`` yields a batch that may span partitions, while Faust tables pick
the changelog partition and the RocksDB partition store from the *current event*. To
write a partition's keys from a batch we bind one of that partition's events as the
current event while touching the table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from faust.streams import _current_event
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT

logger = logging.getLogger(__name__)


@contextmanager
def bound(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class DirectSender:
    """Sends through the app's own aiokafka producer, bypassing Faust's ProducerBuffer.

    Faust drains its buffer one message per await and throttles every agent until it
    holds <= 100 messages, which caps a worker near 1k lines/s (measured). The records go
    to the same aiokafka producer, so Faust's flush before each offset commit still
    covers them. A failed delivery exits the process before that commit can happen
    (at-least-once: the input is processed again on restart).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def _producer(self) -> Any:
        return self.app.producer._ensure_producer()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer().send(
            topic, key=key, value=value, partition=partition
        )
        future.add_done_callback(_exit_on_failure)
        return future


class DirectTableWriter:
    """Writes a table's store and its changelog (event's partition) without Faust's buffer."""

    def __init__(self, table: Any, sender: DirectSender) -> None:
        self.table = table
        self.sender = sender

    def get(self, key: bytes) -> bytes | None:
        return self.table.data.get(key)

    async def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Store locally then append to the changelog; call with an event of ``partition``
        bound (``bound``), as the RocksDB store picks its partition from it."""
        if value is None:
            self.table.data.pop(key, None)
        else:
            self.table.data[key] = value
        topic = self.table.changelog_topic.get_topic_name()
        future = await self.sender.send(topic, key, value, partition)
        future.add_done_callback(partial(self._persisted, topic, partition))

    def _persisted(self, topic: str, partition: int, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.table.data.set_persisted_offset(TP(topic, partition), future.result().offset)


#: How long a fetch request may wait on the broker for records (Faust hard-codes 1500).
FETCH_MAX_WAIT_MS = 50


class _PromptFetchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by consumer.start()
        return consumer


class PromptFetchConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with fetch requests that wait at most 50 ms.

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``. aiokafka has one
    fetch request in flight per broker and leaves partitions with buffered records out of
    it, so once a busy partition's prefetched records are drained its next records wait
    for the in-flight request on the *quiet* partitions to expire: measured, a stall of
    1.0-1.5 s every ~2 s on a backlog (agent idle, event loop idle). An idle worker now
    sends ~20 empty fetches/s instead of <1.
    """

    def _new_consumer_thread(self) -> Any:
        return _PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


def _exit_on_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        logger.critical("produce failed (%r); exiting before offsets are committed", future)
        os._exit(70)
