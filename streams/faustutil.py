"""Faust internals the processing relies on (the consumer's are in ``streams.faustconsumer``).

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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import rocksdict
from faust import stores as faust_stores
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import _current_event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, EventT

from schemas.partitioning import Murmur2Partitioner

logger = logging.getLogger(__name__)


@contextmanager
def bound(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class Outbox:
    """What one agent batch produces, sent as one aiokafka batch per (topic, partition).

    ``add`` only queues (no I/O); ``flush`` hands each (topic, partition)'s records to the
    app's own aiokafka producer with ``create_batch``/``send_batch``: one accumulator entry
    and one future per partition instead of per record (per-record ``send`` was ~12% of a
    worker's CPU: metadata lookups, a future and a callback each). Records keep their
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
        self._records: dict[tuple[str, int | None], list[tuple[bytes | None, bytes | None]]] = {}
        self._on_sent: dict[tuple[str, int], Callable[[int], None]] = {}
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = Murmur2Partitioner()

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._records.setdefault((topic, partition), []).append((key, value))

    def on_sent(self, topic: str, partition: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(offset of the last record)`` once the partition's records are acked."""
        self._on_sent[(topic, partition)] = callback

    async def flush(self) -> None:
        if not self._records:
            return
        producer = self.app.producer._ensure_producer()
        records, self._records = self._records, {}
        on_sent, self._on_sent = self._on_sent, {}
        topics = {topic for topic, _ in records}
        if not topics <= self._tracked:
            await self._track(producer, topics | self._topics)
        grouped: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for (topic, partition), items in records.items():
            if partition is not None:
                grouped.setdefault((topic, partition), []).extend(items)
                continue
            partitions = self._partitions.get(topic)
            if partitions is None:
                partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
            for key, value in items:
                chosen = self._partitioner(key, partitions, partitions)
                grouped.setdefault((topic, chosen), []).append((key, value))
        for (topic, partition), items in grouped.items():
            callback = on_sent.get((topic, partition))
            batch, count = producer.create_batch(), 0
            for key, value in items:
                if batch.append(timestamp=None, key=key, value=value) is None:
                    await self._submit(producer, batch, topic, partition, count, callback)
                    batch, count = producer.create_batch(), 0
                    if batch.append(timestamp=None, key=key, value=value) is None:
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
        new customer), ~5% of a worker end to end. The key index Faust keeps on hits only
        speeds up reads made without an event, which scan every partition without it."""
        store = self.table.data
        if isinstance(store, faust_rocksdb.Store) and store.use_rocksdict:
            eventref = _current_event.get(None)
            event = eventref() if eventref is not None else None
            if event is not None:
                value: bytes | None = store._db_for_partition(event.message.partition).get(key)
                return value
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
    db_for_partition = getattr(table.data, "_db_for_partition", None)
    if db_for_partition is None:
        return []
    rows: list[tuple[bytes, bytes]] = []
    for key, value in db_for_partition(partition).items(from_key=start):
        if not key.startswith(prefix) or len(rows) >= limit:
            break
        rows.append((key, value))
    return rows


def take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[EventT]]:
    """``stream.take_events(max_, within)`` whose wait starts at a batch's first event.

    faust-streaming's ``take_events`` waits for a full buffer with a ``within`` timeout
    in a loop, so an agent with nothing to do wakes every ``within`` (every 5 ms: 200
    times a second, each a ``Service.wait_first`` of several futures); two idle agents
    were the larger part of an idle worker's CPU. This copy of faust-streaming 0.15.3's
    method waits without a timeout until the buffer has an event, then up to ``within``
    for it to fill, so a batch is yielded at most ``within`` after its first event and
    an idle agent sleeps. Acks, the buffer bound and ``current_event`` are as in Faust.
    """
    batches = _take_batches(stream, max_, within)
    stream._active_agens.add(batches)  # as Faust's take_events: closed when the stream stops
    return batches


async def _take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[EventT]]:
    buffer: list[Any] = []
    events: list[EventT] = []
    buffer_started = asyncio.Event()
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    stream_enable_acks: bool = stream.enable_acks
    buffer_consuming: asyncio.Future[None] | None = None
    channel_it = stream.channel.__aiter__()

    async def add_to_buffer(value: Any) -> Any:
        # faust's processor: the stream consumes the channel in the background and
        # passes every value through here
        nonlocal buffer_consuming
        try:
            if buffer_consuming is not None:
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            buffer.append(value)
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            buffer_started.set()
            if len(buffer) >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # events are acked here once the batch is processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_started)
            await stream.wait_for_stopped(buffer_full, timeout=within)
            if buffer:
                buffer_consuming = asyncio.get_running_loop().create_future()
                try:
                    yield list(events)
                finally:
                    buffer.clear()
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    if not buffer_consuming.done():
                        buffer_consuming.set_result(None)
                    buffer_started.clear()
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)


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
    and decompressed an SST block: ~20% of a busy worker's time, in ``Store._get``.
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


class OrderedRecovery(Recovery):
    """Faust's table recovery, handing the stream partitions back in a safe order.

    faust-streaming's ``Recovery.on_recovery_completed`` resumes the stream partitions,
    seeks them to their committed offsets, then resumes flow control, which clears every
    stream queue. The consumer's flow was still active from the changelog restore, so
    records fetched in that window were marked read and then cleared: measured in the
    SIGKILL test, the record at a restarted worker's committed offset was never processed
    (an order never decided: ``orders.requests`` offset 108 with 108 committed, then
    109.. processed), and some restarted workers never processed again.

    Here the flow is stopped first, the partitions are sought while their records cannot
    reach a stream, the queues are cleared, and only then are the stream partitions
    resumed and the flow restarted: every record delivered comes from the committed
    offsets on. Otherwise the same steps as faust-streaming 0.15.3's method.
    """

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app: Any = self.app
        consumer = app.consumer
        consumer.stop_flow()
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        app.flow_control.resume()  # clears the stream queues
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class OrderedTableManager(TableManager):
    """Faust's table manager with ``OrderedRecovery`` (the app's ``TableManager``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = OrderedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
