"""The sink's consumer loop (kafka-python): poll, batch, flush, back off.

Partitions are assigned statically (``shard`` of ``shards``: partition p when
p % shards == shard), not by the group protocol: PostgreSQL is the source of truth for
what was consumed, so no group rebalance is needed, and one PostgreSQL advisory lock
per shard (``sinks.lock``) keeps a second instance of the same shard waiting; a sink
that no longer holds it (``LockLost`` from a flush, or from the check an idle sink makes
every ``LOCK_CHECK_S``) stops at once and raises. Each
partition is positioned at its ``consumed_offsets`` row (or the beginning) before it
is read. Offsets committed to Kafka are only a courtesy for lag monitoring.
While PostgreSQL is down the partitions stay paused and the flush is retried with
exponential backoff; nothing is skipped, because offsets only advance in the
committed transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from sqlalchemy import Engine

from orderstream.core.health import Heartbeat
from sinks.backoff import Backoff
from sinks.exceptions import LockLost
from sinks.fetchpace import FetchPace
from sinks.postgres import PostgresSink, next_offsets
from sinks.records import ConsumedRecord
from sinks.store import load_offsets
from sinks.uow import UnitOfWork

logger = logging.getLogger(__name__)

#: How much longer than its batch timeout a batch may wait for unread cancellations.
CANCEL_CATCH_UP_S = 1.0
CATCH_UP_POLL_MS = 10
LOCK_CHECK_S = 5.0  # an idle sink asks this often whether its shard lock is still held
#: How long a poll with no batch open may block once the fetches long-poll. It returns at the
#: first record, so this only bounds how often an idle sink wakes for its lock and stop flag.
IDLE_POLL_MS = 1000


class SinkConsumer:
    def __init__(
        self,
        consumer: KafkaConsumer,
        sink: PostgresSink,
        engine: Engine,
        consumer_name: str,
        batch_size: int,
        batch_timeout_s: float,
        stop: threading.Event | None = None,
        cancellations_topic: str | None = None,
        pace: FetchPace | None = None,
    ) -> None:
        self._consumer = consumer
        self._pace = pace  # None: the consumer's fetch options stay as built
        self._sink = sink
        self._engine = engine
        self._name = consumer_name
        self._batch_size = batch_size
        self._batch_timeout_s = batch_timeout_s
        self._stop = stop or threading.Event()
        self._unpositioned: set[TopicPartition] = set()
        self._backoff = Backoff()
        self._cancellations_topic = cancellations_topic
        self.flush_failures = 0
        self._lock_checked_at = time.monotonic()
        self.heartbeat = Heartbeat()  # every round of the loop, also while backing off (/livez)
        # next offset to write, per (topic, partition), as committed to PostgreSQL (metrics)
        self.written_offsets: dict[tuple[str, int], int] = {}

    def assign(self, topics: tuple[str, ...], shard: int = 0, shards: int = 1) -> None:
        """Own partition p of every topic where p % shards == shard (same p for every
        topic: the cancellations and the commits of one order meet in one instance)."""
        partitions: list[TopicPartition] = []
        for topic in topics:
            found = self._wait_partitions(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(found) if p % shards == shard]
        self._consumer.assign(partitions)
        self._consumer.pause(*partitions)
        self._unpositioned = set(partitions)
        logger.info("assigned %d partitions (shard %d of %d)", len(partitions), shard, shards)

    def _wait_partitions(self, topic: str) -> set[int]:
        backoff = Backoff(max_s=2.0)
        while not self._stop.is_set():
            found = self._consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            logger.warning("no partitions for topic %s yet (auto-creation is off)", topic)
            self._stop.wait(backoff.next_delay())
        return set()

    def run(self) -> None:
        first_at: float | None = None
        catching_up = False
        while not self._stop.is_set():
            self.heartbeat.beat()
            self._check_lock_when_idle()
            if self._unpositioned and not self._position():
                self._wait_retry()
                continue
            room = max(1, self._batch_size - len(self._sink))
            timeout_ms = self._poll_timeout_ms(first_at, catching_up)
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=room)
            if self._pace is not None:
                self._pace.after_poll(self._consumer, sum(map(len, polled.values())))
            for records in polled.values():
                for r in records:
                    self._sink.add(
                        ConsumedRecord(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                    )
            if len(self._sink) and first_at is None:
                first_at = time.monotonic()
            now = time.monotonic()
            due = first_at is not None and now >= first_at + self._batch_timeout_s
            if (
                due
                and len(self._sink) < self._batch_size
                and first_at is not None
                and now < first_at + self._batch_timeout_s + CANCEL_CATCH_UP_S
                and self._cancellations_unread()
            ):
                catching_up = True
                continue  # read the cancels already in Kafka before deciding this batch
            catching_up = False
            if len(self._sink) >= self._batch_size or (len(self._sink) and due):
                self._flush_until_done()
                first_at = None
        self._flush_until_done(give_up_on_stop=True)

    def _poll_timeout_ms(self, first_at: float | None, catching_up: bool) -> int:
        """With a batch open, what the batch has left. With none, a poll returns at its first
        record, so it may block: ``IDLE_POLL_MS`` once the fetches long-poll, the batch
        timeout while they are short (so that a quiet spell soon ends them: sinks.fetchpace)."""
        if first_at is not None:
            left_ms = int((first_at + self._batch_timeout_s - time.monotonic()) * 1000)
            return max(CATCH_UP_POLL_MS if catching_up else 0, left_ms)
        if self._pace is not None and not self._pace.idle:
            return int(self._batch_timeout_s * 1000)
        return IDLE_POLL_MS

    def _cancellations_unread(self) -> bool:
        """True while a cancellations partition holds records this sink has not read.

        A ``CancelOrder`` and the ``OrderCommitted`` it races are in different topics, read
        independently; without this, a sink catching up (restarted, or slow) could write an
        order ``shipped`` from one batch while the cancel acknowledged (202) before it waits
        in the next. The high watermarks come with every fetch response (no extra request).
        """
        if self._cancellations_topic is None:
            return False
        for tp in self._consumer.assignment():
            if tp.topic != self._cancellations_topic or tp in self._unpositioned:
                continue
            high = self._consumer.highwater(tp)
            # None: no fetch response has reported this partition yet (just positioned):
            # its end is unknown, so it may hold a cancel for an order in this batch
            if high is None or self._consumer.position(tp) < high:
                return True
        return False

    def lag(self) -> dict[tuple[str, int], int]:
        """Records past what PostgreSQL holds, per assigned partition whose end a fetch has
        reported (read from another thread by the metrics server: cached values only)."""
        lag = {}
        for tp in list(self._consumer.assignment()):
            high = self._consumer.highwater(tp)
            written = self.written_offsets.get((tp.topic, tp.partition))
            if high is not None and written is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - written)
        return lag

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except Exception as error:
            logger.debug("consumer close: %s", error)

    def _check_lock_when_idle(self) -> None:
        """Every ``LOCK_CHECK_S`` without a batch, ask whether the shard is still ours, so
        that a sink whose lock went with a PostgreSQL restart stops now, not at its next
        batch; any other failure is the next batch's to meet."""
        now = time.monotonic()
        if now - self._lock_checked_at < LOCK_CHECK_S:
            return
        self._lock_checked_at = now
        try:
            self._sink.check_lock()
        except LockLost as lost:
            logger.critical("%s: stopping (nothing uncommitted)", lost)
            self._stop.set()
            raise
        except Exception as error:
            logger.debug("lock check skipped: %s", _first_line(error))

    def _flush_until_done(self, give_up_on_stop: bool = False) -> None:
        paused = False
        while len(self._sink):
            self.heartbeat.beat()
            pending = self._sink.buffered()
            try:
                self._sink.flush()
            except LockLost as lost:
                logger.critical(
                    "%s: stopping with %d uncommitted records (not lost)", lost, len(self._sink)
                )
                self._sink.discard()
                self._stop.set()
                raise
            except Exception as error:
                self.flush_failures += 1
                logger.warning(
                    "flush of %d records failed: %s", len(self._sink), _first_line(error)
                )
                if give_up_on_stop and self._stop.is_set():
                    logger.warning(
                        "stopping with %d uncommitted records (not lost)", len(self._sink)
                    )
                    self._sink.discard()
                    return
                if not paused:
                    self._consumer.pause(*self._consumer.assignment())
                    paused = True
                self._wait_retry()
                continue
            self._backoff.reset()
            self._lock_checked_at = time.monotonic()  # the batch's transaction checked it
            written = next_offsets(pending)
            self.written_offsets.update(written)
            self._commit_to_kafka(written)
        if paused:
            self._resume_positioned()

    def _wait_retry(self) -> None:
        delay = self._backoff.next_delay()
        self._stop.wait(delay)
        # keep the group membership alive (partitions paused: returns nothing)
        self._consumer.poll(timeout_ms=0)

    def _position(self) -> bool:
        """Seek newly assigned partitions to the offsets PostgreSQL holds (a partition
        without a row starts at its log start offset, looked up now rather than left to a
        lazy reset, so the first fetch covers every partition at once)."""
        partitions = self._unpositioned & self._consumer.assignment()
        try:
            with UnitOfWork(self._engine) as uow:
                offsets = load_offsets(
                    uow.connection, self._name, {(tp.topic, tp.partition) for tp in partitions}
                )
            fresh = [tp for tp in partitions if (tp.topic, tp.partition) not in offsets]
            starts = self._consumer.beginning_offsets(fresh) if fresh else {}
        except Exception as error:
            logger.warning("cannot position partitions: %s", _first_line(error))
            return False
        for tp in partitions:
            offset = offsets.get((tp.topic, tp.partition))
            position = starts[tp] if offset is None else offset
            self._consumer.seek(tp, position)
            self.written_offsets[(tp.topic, tp.partition)] = position
            logger.info(
                "positioned %s[%d] at %s%s",
                tp.topic,
                tp.partition,
                position,
                " (log start)" if offset is None else "",
            )
        self._unpositioned.clear()
        self._backoff.reset()
        self._resume_positioned()
        return True

    def _resume_positioned(self) -> None:
        ready = [tp for tp in self._consumer.assignment() if tp not in self._unpositioned]
        if ready:
            self._consumer.resume(*ready)

    def _commit_to_kafka(self, written: Mapping[tuple[str, int], int]) -> None:
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
            for (t, p), o in written.items()
            if TopicPartition(t, p) in assigned
        }
        if not offsets:
            return
        try:
            self._consumer.commit_async(offsets)
        except Exception as error:
            logger.debug("kafka offset commit skipped: %s", error)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
