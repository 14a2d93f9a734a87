"""settle_orders' batch step, plus the per-partition index used for expiry and pruning.

The index (pending orders, decided orders by age) lives in memory and is rebuilt from
the table on the first expiry tick of a partition after every rebalance (consumer
generation change); the table is the truth, the index only says where to look.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import faust
from faust.types import EventT

from orderstream.core import tracing
from schemas import codec
from schemas import topics as names
from schemas.orders import OrderExpiryCheck
from streams import continuity, settlement
from streams.effects import dead_letter, deliver
from streams.faustinternals import bound
from streams.faustutil import DirectTableWriter, Headers, Outbox
from streams.readmodel import ReadModelWriter
from streams.records import (
    SOURCE_MARK_PREFIX,
    OrderState,
    SourceMark,
    decode_order,
    decode_stock,
    encode,
    source_mark_key,
)
from streams.settlement import Effect
from streams.topics import StreamTopics

logger = logging.getLogger(__name__)


@dataclass
class PartitionIndex:
    pending: dict[str, float] = field(default_factory=dict)  # order_id -> first_seen
    decided: deque[tuple[float, str]] = field(default_factory=deque)  # (decided_at, order_id)
    tick_decided: list[tuple[int, str]] = field(default_factory=list)  # from the last scan


class SettleProcessor:
    def __init__(
        self,
        app: faust.App,
        table: faust.types.TableT,
        writer: DirectTableWriter,
        outbox: Outbox,
        topics: StreamTopics,
        readmodel: ReadModelWriter,
        *,
        hold_time_s: float,
        retention_s: float,
        consumer: str = "settle_orders",
    ) -> None:
        self.app = app
        self.consumer = consumer  # who dead-letters: in the envelope
        self.dead_letter = topics.output(names.DEAD_LETTER).get_topic_name()
        self.table = table
        self.writer = writer
        self.outbox = outbox
        self.topics = topics
        self.readmodel = readmodel
        self.hold_time_s = hold_time_s
        self.retention_s = retention_s
        self.index: dict[int, PartitionIndex] = defaultdict(PartitionIndex)
        self.indexed_generation: dict[int, int] = {}

    async def process(self, events: Sequence[EventT]) -> None:
        by_partition: dict[int, list[EventT]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        for partition, partition_events in by_partition.items():
            with bound(partition_events[-1]):
                gaps = continuity.gaps(self._source_mark(partition), partition_events)
            if gaps:
                continuity.exit_for_restore(self.table, continuity.TableBehind(gaps))
        for partition, partition_events in by_partition.items():
            self._process_partition(partition, partition_events)
        await self.outbox.flush()

    def _process_partition(self, partition: int, events: list[EventT]) -> None:
        cache: dict[str, OrderState | None] = {}
        dirty: dict[str, OrderState] = {}
        effects: list[tuple[list[Effect], Headers | None]] = []  # with the trace to pass on
        index = self.index[partition]
        now = time.time()
        with bound(events[-1]):
            for event in events:
                message = event.message
                try:
                    record = codec.reservation_stream_decoder.decode(message.value or b"")
                except (codec.DecodeError, codec.ValidationError) as exc:
                    dead_letter(self.outbox, self.dead_letter, message, exc, self.consumer)
                    continue
                if isinstance(record, OrderExpiryCheck):
                    self._write(partition, dirty)
                    cache.clear()
                    effects.append(
                        (self._tick(partition, message.topic, message.offset, now), None)
                    )
                    continue
                if record.order_id not in cache:
                    cache[record.order_id] = self._load(record.order_id)
                order = cache[record.order_id]
                with tracing.step(
                    "settle_orders",
                    message.headers,
                    order_id=record.order_id,
                    line_no=getattr(record, "line_no", None),
                ) as span:
                    new, produced = settlement.settle(
                        order,
                        record,
                        source=message.topic,
                        offset=message.offset,
                        partition=partition,
                        now=now,
                        retention_s=self.retention_s,
                    )
                if new is not None and new is not order:
                    cache[record.order_id] = dirty[record.order_id] = new
                    self._track(index, order, new)
                effects.append((produced, tracing.headers_of(span)))
            self._write(partition, dirty)
            # last: restored only with every write it covers (streams.continuity)
            mark = continuity.advanced(self._source_mark(partition), events)
            self.writer.put(partition, source_mark_key(partition), encode(mark))
        for produced, headers in effects:
            deliver(produced, self.outbox, self.topics, self.readmodel, headers)

    # ------------------------------------------------------------------ expiry
    def _tick(self, partition: int, topic: str, offset: int, now: float) -> list[Effect]:
        index = self._ensure_index(partition)
        effects: list[Effect] = []
        # a replayed tick may have decided orders whose effects never left: emit again
        for tick_offset, order_id in index.tick_decided:
            if tick_offset >= offset and (order := self._load(order_id)) is not None:
                effects += settlement.replay_effects(order)
        index.tick_decided.clear()
        for order_id, first_seen in list(index.pending.items()):
            if now - first_seen < self.hold_time_s:
                continue
            order = self._load(order_id)
            if order is None or order.phase != "pending":
                index.pending.pop(order_id, None)
                continue
            new, produced = settlement.expire(
                order, now=now, hold_time_s=self.hold_time_s, source=topic, tick_offset=offset
            )
            self.writer.put(partition, order_id.encode(), encode(new))
            self._track(index, order, new)
            effects += produced
        while index.decided and now - index.decided[0][0] >= self.retention_s:
            _, order_id = index.decided.popleft()
            order = self._load(order_id)
            if order is not None and settlement.prunable(
                order, now=now, retention_s=self.retention_s
            ):
                self.writer.put(partition, order_id.encode(), None)
        return effects

    def _ensure_index(self, partition: int) -> PartitionIndex:
        generation = self.app.consumer_generation_id
        if self.indexed_generation.get(partition) == generation:
            return self.index[partition]
        index = self.index[partition] = PartitionIndex()
        decided = []
        for key, raw in self.table.items():
            if key.startswith(SOURCE_MARK_PREFIX):
                continue
            order = decode_order(raw)
            if order.partition != partition:
                continue
            if order.phase == "pending":
                index.pending[order.order_id] = order.first_seen
            else:
                decided.append((order.decided_at or order.first_seen, order.order_id))
                if order.decided_by_tick is not None:
                    index.tick_decided.append((order.decided_by_tick, order.order_id))
        index.decided.extend(sorted(decided))
        self.indexed_generation[partition] = generation
        logger.info(
            "settle index for partition %s: %s pending, %s decided",
            partition,
            len(index.pending),
            len(index.decided),
        )
        return index

    # ----------------------------------------------------------------- helpers
    def _track(self, index: PartitionIndex, old: OrderState | None, new: OrderState) -> None:
        if new.phase == "pending":
            index.pending.setdefault(new.order_id, new.first_seen)
        elif old is None or old.phase == "pending":
            index.pending.pop(new.order_id, None)
            index.decided.append((new.decided_at or new.first_seen, new.order_id))

    def _source_mark(self, partition: int) -> SourceMark | None:
        """``partition``'s source mark (``streams.continuity``); an event of it bound."""
        raw = self.writer.get(source_mark_key(partition))
        record = decode_stock(raw) if raw is not None else None
        return record if isinstance(record, SourceMark) else None

    def _load(self, order_id: str) -> OrderState | None:
        raw = self.writer.get(order_id.encode())
        return decode_order(raw) if raw is not None else None

    def _write(self, partition: int, dirty: dict[str, OrderState]) -> None:
        for order_id, order in dirty.items():
            self.writer.put(partition, order_id.encode(), encode(order))
        dirty.clear()


def tick_topic(topics: StreamTopics) -> faust.TopicT:
    return topics.output(names.ORDER_RESERVATIONS)
