"""reserve_stock's batch step: decode, decide through the ledger, write, send.

One batch from ``take_events`` may hold events of several partitions; each partition's
events are applied in order against a write-back cache of the table, then the dirty keys
are written while one of that partition's events is bound (``StockCache.write``: lines,
the prune mark, pruned lines' deletions, customers, then products: the order the ledger's
healing relies on), then results are sent.

A single-line order is settled here, in its product's partition: its one line record is
the whole order, so ``settlement.settle`` is applied to it directly and the order's
decision (``OrderCommitted``/``OrderRejected``, the read-model status, a release when the
price check fails) leaves with the batch. Only orders whose lines live in several product
partitions go through ``orders.reservations`` and ``settle_orders``. A replay recalls the
recorded line and so re-emits the same decision with the same event ids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from faust.types import EventT

from orderstream.core import tracing
from schemas import codec
from schemas import topics as names
from schemas.common import event_id_for
from schemas.inventory import ReleaseLine
from schemas.orders import LineRejected, LineReserved
from streams import continuity, ledger, settlement
from streams.effects import dead_letter, deliver
from streams.faustinternals import bound
from streams.faustutil import DirectTableWriter, Headers, Outbox
from streams.pruning import LinePruner
from streams.readmodel import ReadModelWriter
from streams.records import (
    CustomerHolding,
    LineState,
    ProductState,
    PruneMark,
    SourceMark,
    StockRecord,
    decode_stock,
    encode,
    prune_mark_key,
    source_mark_key,
)
from streams.topics import StreamTopics

logger = logging.getLogger(__name__)


class StockCache:
    """``ledger.StockState`` over a Faust table for one partition's batch."""

    def __init__(self, table: DirectTableWriter) -> None:
        self.table = table
        self.values: dict[bytes, StockRecord | None] = {}
        self.dirty: dict[bytes, StockRecord | None] = {}  # None: delete

    def get(self, key: bytes) -> StockRecord | None:
        try:
            return self.values[key]
        except KeyError:
            raw = self.table.get(key)
            record = decode_stock(raw) if raw is not None else None
            self.values[key] = record
            return record

    def set(self, key: bytes, record: StockRecord) -> None:
        self.values[key] = record
        self.dirty[key] = record

    def delete(self, key: bytes) -> None:
        self.values[key] = None
        self.dirty[key] = None

    def write(self, partition: int) -> list[ProductState]:
        """Write dirty records: lines, the prune mark, pruned lines (deletions), customers,
        products, the source mark. Any prefix of this order is healable (``ledger``); the
        prune mark follows the lines it covers and precedes the deletions it explains; the
        source mark comes last, so it is only restored with every write it covers
        (``continuity``). Returns the products."""
        put = self.table.put
        products = []
        for key, record in self.dirty.items():
            if isinstance(record, LineState):
                put(partition, key, encode(record))
        for key, record in self.dirty.items():
            if isinstance(record, PruneMark):
                put(partition, key, encode(record))
        for key, record in self.dirty.items():
            if record is None:
                put(partition, key, None)
        for key, record in self.dirty.items():
            if isinstance(record, CustomerHolding):
                put(partition, key, encode(record))
        for key, record in self.dirty.items():
            if isinstance(record, ProductState):
                put(partition, key, encode(record))
                products.append(record)
        for key, record in self.dirty.items():
            if isinstance(record, SourceMark):
                put(partition, key, encode(record))
        self.dirty.clear()
        return products


def _source_mark(cache: StockCache, partition: int) -> SourceMark | None:
    record = cache.get(source_mark_key(partition))
    return record if isinstance(record, SourceMark) else None


def line_result(line: LineState) -> LineReserved | LineRejected:
    common = dict(
        event_id=event_id_for(line.order_id, line.line_no, "line"),
        order_id=line.order_id,
        line_no=line.line_no,
        line_count=line.line_count,
        customer_id=line.customer_id,
        product_id=line.product_id,
        quantity=line.quantity,
        expected_total=line.expected_total,
        shipping_address=line.shipping_address,
        payment_method=line.payment_method,
        decided_at=line.decided_at,
    )
    if line.status == "rejected":
        return LineRejected(reason=line.reason, detail=line.detail, **common)  # type: ignore[arg-type]
    return LineReserved(unit_price=line.unit_price, **common)  # type: ignore[arg-type]


class StockProcessor:
    def __init__(
        self,
        table: DirectTableWriter,
        outbox: Outbox,
        topics: StreamTopics,
        requests_topic: str,
        readmodel: ReadModelWriter,
        pruner: LinePruner | None = None,
        line_retention_s: float = 0.0,
        consumer: str = "reserve_stock",
    ) -> None:
        self.table = table
        self.consumer = consumer  # who dead-letters: in the envelope
        self.outbox = outbox
        self.topics = topics
        self.requests_topic = requests_topic
        self.readmodel = readmodel
        self.pruner = pruner if line_retention_s > 0 else None
        # per partition: (consumer generation, the highest orders.requests offset processed
        # in it): every earlier request was processed before, here or by a previous owner.
        # A rebalance makes it unknown until this worker processes a request again.
        self.processed_up_to: dict[int, tuple[int, int]] = {}
        self.line_retention = timedelta(seconds=line_retention_s)
        self.reservations = topics.output(names.ORDER_RESERVATIONS).get_topic_name()
        self.dead_letter = topics.output(names.DEAD_LETTER).get_topic_name()

    def generation(self) -> int:
        return int(getattr(self.table.table.app, "consumer_generation_id", 0) or 0)

    async def process(self, events: Sequence[EventT]) -> None:
        by_partition: dict[int, list[EventT]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        caches = {}
        for partition, partition_events in by_partition.items():
            caches[partition] = cache = StockCache(self.table)
            with bound(partition_events[-1]):
                gaps = continuity.gaps(_source_mark(cache, partition), partition_events)
            if gaps:
                continuity.exit_for_restore(self.table.table, continuity.TableBehind(gaps))
        now = datetime.now(UTC)
        for partition, partition_events in by_partition.items():
            self._process_partition(caches[partition], partition_events, now)
        await self.outbox.flush()

    def _process_partition(self, cache: StockCache, events: list[EventT], now: datetime) -> None:
        results: list[tuple[LineState, Headers | None]] = []  # with the trace to pass on
        admin_commands: list[tuple[str, str]] = []
        partition = events[-1].message.partition
        mark_key = prune_mark_key(partition)
        last_request: int | None = None  # offsets grow within a partition: the highest
        with bound(events[-1]):
            for event in events:
                message = event.message
                try:
                    if message.topic == self.requests_topic:
                        last_request = message.offset
                        request = codec.order_request_decoder.decode(message.value or b"")
                        with tracing.step(
                            "reserve_stock",
                            message.headers,
                            order_id=request.order_id,
                            line_no=request.line_no,
                            product_id=request.product_id,
                        ) as span:
                            line = ledger.on_request(cache, request, message.offset, now, mark_key)
                        if line is not None:
                            results.append((line, tracing.headers_of(span)))
                    else:
                        command = codec.inventory_command_decoder.decode(message.value or b"")
                        ledger.on_command(cache, command, message.offset)
                        if not isinstance(command, ReleaseLine):  # (a replay too: it is applied)
                            admin_commands.append((command.product_id, command.command_id))
                except (codec.DecodeError, codec.ValidationError) as exc:
                    dead_letter(self.outbox, self.dead_letter, message, exc, self.consumer)
            generation = self.generation()
            if last_request is not None:
                self.processed_up_to[partition] = (generation, last_request)
            seen = self.processed_up_to.get(partition)
            if self.pruner is not None and seen is not None and seen[0] == generation:
                cutoff = now - self.line_retention
                old = self.pruner.candidates(partition, cutoff)
                if old:
                    pruned = ledger.prune_lines(cache, old, cutoff, mark_key, seen[1])
                    logger.info("partition %d: %d line records pruned", partition, pruned)
            source_key = source_mark_key(partition)
            cache.set(source_key, continuity.advanced(_source_mark(cache, partition), events))
            products = cache.write(partition)
        # A replay after a crash changes no product, but the read-model write the crash cut
        # off may be missing: publish every product the batch touched (absolute values).
        written = {product.product_id for product in products}
        for key in {event.message.key for event in events if event.message.key}:
            record = cache.get(key)
            if isinstance(record, ProductState) and record.product_id not in written:
                products.append(record)
        for line, headers in results:
            if line.line_count == 1:
                self._settle_in_place(line, headers)
            else:
                self.outbox.add(
                    self.reservations,
                    line.order_id.encode(),
                    codec.encode(line_result(line)),
                    headers=headers,
                )
        for product in products:
            self.readmodel.enqueue_product(product)
        for product_id, command_id in admin_commands:
            self.readmodel.enqueue_applied(product_id, command_id)

    def _settle_in_place(self, line: LineState, headers: Headers | None) -> None:
        """Decide a single-line order from its line record, as ``settle_orders`` would."""
        effects = settlement.settle_single_line(line_result(line))
        deliver(effects, self.outbox, self.topics, self.readmodel, headers)
