"""How the agents write: an outbox of aiokafka batches, direct table writes, table stores.

``take_batches`` yields a batch that may span partitions, while Faust tables pick the
changelog partition and the RocksDB partition store from the *current event*. To write a
partition's keys from a batch we bind one of that partition's events as the current event
(``streams.faustinternals.bound``) while touching the table. What touches Faust's private
parts is in ``streams.faustinternals``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import rocksdict
from faust import stores as faust_stores
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import current_event
from faust.types import TP

from schemas.partitioning import Murmur2Partitioner
from streams.faustinternals import aiokafka_producer, partition_database, table_partition_get

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_Record = tuple[bytes | None, bytes | None, Headers | None]  # key, value, headers


class Outbox:
    """What one agent batch produces, sent as one aiokafka batch per (topic, partition).

    ``add`` only queues (no I/O); ``flush`` hands each (topic, partition)'s records to the
    app's own aiokafka producer with ``create_batch``/``send_batch``: one accumulator entry
    and one future per partition instead of per record (docs/decisions/0020). Records keep their
    order within a partition, so a table's changelog is written in the order it was
    changed. Faust's producer flush before each offset commit covers these batches too,
    and a failed delivery exits the process before that commit can happen (at-least-once:
    the input is processed again on restart). Keyed records without a partition are placed
    by the default partitioner (``schemas.partitioning``: murmur2, as the Java client's).

    Before its first batch to a topic the producer's client tracks that topic, and the
    first flush tracks every topic in ``topics`` (all the worker writes), so a
    metadata refresh never leaves a queued batch without a leader (``_track``).
    """

    def __init__(
        self,
        app: Any,
        on_delivered: Callable[[str, int], None] | None = None,
        topics: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._on_delivered = on_delivered  # (topic, records) once a batch is acked: metrics
        self._topics = frozenset(topics)
        self._tracked: set[str] = set()
        self._records: dict[tuple[str, int | None], list[_Record]] = {}
        self._on_sent: dict[tuple[str, int], Callable[[int], None]] = {}
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = Murmur2Partitioner()

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue a record; ``headers``: a trace's context (``orderstream.core.tracing``)."""
        self._records.setdefault((topic, partition), []).append((key, value, headers))

    def on_sent(self, topic: str, partition: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(offset of the last record)`` once the partition's records are acked."""
        self._on_sent[(topic, partition)] = callback

    async def flush(self) -> None:
        if not self._records:
            return
        producer = aiokafka_producer(self.app)
        records, self._records = self._records, {}
        on_sent, self._on_sent = self._on_sent, {}
        topics = {topic for topic, _ in records}
        if not topics <= self._tracked:
            await self._track(producer, topics | self._topics)
        grouped: dict[tuple[str, int], list[_Record]] = {}
        for (topic, partition), items in records.items():
            if partition is not None:
                grouped.setdefault((topic, partition), []).extend(items)
                continue
            partitions = self._partitions.get(topic)
            if partitions is None:
                partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
            for item in items:
                chosen = self._partitioner(item[0], partitions, partitions)
                grouped.setdefault((topic, chosen), []).append(item)
        for (topic, partition), items in grouped.items():
            callback = on_sent.get((topic, partition))
            batch, count = producer.create_batch(), 0
            for key, value, headers in items:
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    await self._submit(producer, batch, topic, partition, count, callback)
                    batch, count = producer.create_batch(), 0
                    if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        raise ValueError(f"a record for {topic} exceeds the producer batch size")
                count += 1
            await self._submit(producer, batch, topic, partition, count, callback)

    async def _track(self, producer: Any, topics: set[str]) -> None:
        """Make the producer's client track ``topics`` and wait for their metadata.

        An aiokafka client refreshes metadata for the topics it tracks, or for all topics
        while it tracks none, and tracks a topic only when a send finds it unknown. After
        Faust's all-topics refresh (it declares the changelogs) a worker's producer knew
        every topic and tracked none; the first send to a topic that refresh missed made it
        track that one, and its next refresh dropped the rest: batches queued for them had
        no leader until the 20-minute request timeout, and an agent waiting on one stalled.
        """
        untracked = sorted(topics - self._tracked)
        self._tracked.update(untracked)
        # add_topic only records the topic and wakes one refresh, which reads them all
        await asyncio.gather(*(producer.client.add_topic(topic) for topic in untracked))

    async def _submit(
        self,
        producer: Any,
        batch: Any,
        topic: str,
        partition: int,
        count: int,
        callback: Callable[[int], None] | None,
    ) -> None:
        future = await producer.send_batch(batch, topic, partition=partition)
        future.add_done_callback(_exit_on_failure)
        if callback is not None:
            future.add_done_callback(partial(_call_with_last_offset, callback, count))
        if self._on_delivered is not None:
            future.add_done_callback(partial(_count_delivered, self._on_delivered, topic, count))


def _count_delivered(
    on_delivered: Callable[[str, int], None], topic: str, count: int, future: asyncio.Future[Any]
) -> None:
    if not future.cancelled() and future.exception() is None:
        on_delivered(topic, count)


def _call_with_last_offset(
    callback: Callable[[int], None], count: int, future: asyncio.Future[Any]
) -> None:
    if not future.cancelled() and future.exception() is None:
        callback(future.result().offset + count - 1)


class DirectTableWriter:
    """Writes a table's store, and its changelog (event's partition) through an ``Outbox``."""

    def __init__(self, table: Any, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()

    def get(self, key: bytes) -> bytes | None:
        """The stored value of ``key`` in the bound event's partition (``bound``), or None.

        On RocksDB this reads the partition's rocksdict directly, as ``Store._get`` does in
        the end: ``table.data.get`` goes through ``Mapping.get``, ``__getitem__`` and a
        raised and caught ``KeyError`` for every key not stored yet (a new order's line, a
        new customer; docs/decisions/0013). The key index Faust keeps on hits only
        speeds up reads made without an event, which scan every partition without it."""
        store = self.table.data
        if isinstance(store, faust_rocksdb.Store) and store.use_rocksdict:
            event = current_event()
            if event is not None:
                return table_partition_get(store, event.message.partition, key)
        return store.get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Store locally, queue the changelog record; call with an event of ``partition``
        bound (``bound``), as the RocksDB store picks its partition from it. The record
        leaves with the outbox's next ``flush``."""
        if value is None:
            self.table.data.pop(key, None)
        else:
            self.table.data[key] = value
        self.outbox.add(self.changelog, key, value, partition)
        self.outbox.on_sent(
            self.changelog, partition, partial(self._persisted, TP(self.changelog, partition))
        )

    def _persisted(self, tp: TP, offset: int) -> None:
        self.table.data.set_persisted_offset(tp, offset)


def scan_partition(
    table: Any, partition: int, start: bytes, limit: int, *, prefix: bytes
) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` (key, value) pairs of ``table`` in ``partition`` whose keys start with
    ``prefix``, from ``start`` on, in key order. RocksDB (rocksdict): that partition's own
    database, read from ``start``. The memory store keeps every partition's keys in one
    mapping, so nothing is read (nor pruned) there: a key of another partition would be
    deleted through this partition's changelog."""
    db = partition_database(table.data, partition)
    if db is None:
        return []
    rows: list[tuple[bytes, bytes]] = []
    for key, value in db.items(from_key=start):
        if not key.startswith(prefix) or len(rows) >= limit:
            break
        rows.append((key, value))
    return rows


def _exit_on_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        logger.critical("produce failed (%r); exiting before offsets are committed", future)
        os._exit(70)


class TableStoreOptions(faust_rocksdb.RocksDBOptions):
    """Faust's RocksDB options, applied to the database's column family as well.

    rocksdict applies ``options`` to a database it creates, but reopens an existing one's
    column family with RocksDB's defaults: after a worker's first restart its tables had
    no bloom filter and an 8 MiB block cache (``filter_policy: nullptr`` in the LOG), so
    every lookup of a key that does not exist (a new order's line, a new customer) read
    and decompressed an SST block (docs/decisions/0014).
    Same as Faust's ``open`` for rocksdict, plus ``column_families``.
    """

    def open(self, path: Path, *, read_only: bool = False) -> Any:
        access = (
            rocksdict.AccessType.read_write()
            if self.ttl is None
            else rocksdict.AccessType.with_ttl(self.ttl)
        )
        db = rocksdict.Rdict(
            str(path),
            options=self.as_options(),
            column_families={"default": self.as_options()},
            access_type=access,
        )
        db.set_read_options(rocksdict.ReadOptions())
        return db


class TableStore(faust_rocksdb.Store):
    """Faust's RocksDB store with ``TableStoreOptions`` (``rocksdb://`` in this process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_rocksdict:
            self.rocksdb_options = TableStoreOptions(**(self.options or {}), use_rocksdict=True)


faust_stores.STORES.aliases["rocksdb"] = f"{__name__}:TableStore"
