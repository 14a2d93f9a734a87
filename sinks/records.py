"""What the sink consumes: raw Kafka records, parsed into typed order events.

A record that cannot be parsed raises ``PoisonRecord``; the sink dead-letters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from schemas import deadletter
from schemas.inventory import Discontinue, InventoryCommand, UpsertProduct
from schemas.orders import CancelOrder, OrderCancelled, OrderCommitted, OrderRejected
from schemas.topics import (
    INVENTORY_COMMANDS,
    ORDER_CANCELLATIONS,
    ORDERS_CANCELLED,
    ORDERS_COMMITTED,
    ORDERS_REJECTED,
    TopicNames,
)
from sinks.exceptions import PoisonRecord

# Everything the projection acts on. Other inventory commands (restock, release) are
# consumed and skipped: they change stock, which PostgreSQL does not hold.
SinkEvent = (
    OrderCommitted | OrderRejected | OrderCancelled | CancelOrder | UpsertProduct | Discontinue
)

SOURCE_TOPICS = (
    ORDERS_COMMITTED,
    ORDERS_REJECTED,
    ORDERS_CANCELLED,
    ORDER_CANCELLATIONS,
    INVENTORY_COMMANDS,
)


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None = None  # a trace's context, when traced


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    record: ConsumedRecord
    event: SinkEvent | None  # None: consumed, nothing to project


_DECODERS: dict[str, msgspec.json.Decoder[object]] = {
    ORDERS_COMMITTED: msgspec.json.Decoder(OrderCommitted),
    ORDERS_REJECTED: msgspec.json.Decoder(OrderRejected),
    ORDERS_CANCELLED: msgspec.json.Decoder(OrderCancelled),
    ORDER_CANCELLATIONS: msgspec.json.Decoder(CancelOrder),
    INVENTORY_COMMANDS: msgspec.json.Decoder(InventoryCommand),
}


def source_topics(topics: TopicNames) -> tuple[str, ...]:
    return tuple(topics(name) for name in SOURCE_TOPICS)


def parse(record: ConsumedRecord, topics: TopicNames) -> ParsedRecord:
    """The typed event of a record, or ``PoisonRecord`` with the reason it cannot be read."""
    logical = record.topic.removeprefix(topics.prefix)
    decoder = _DECODERS.get(logical)
    if decoder is None:
        raise PoisonRecord(f"unexpected topic {record.topic!r}")
    if record.value is None:
        raise PoisonRecord("empty value (tombstone)")
    try:
        event = decoder.decode(record.value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PoisonRecord(f"cannot decode: {exc}") from exc
    if isinstance(event, UpsertProduct | Discontinue):
        return ParsedRecord(record, event)
    if not isinstance(event, SinkEvent):  # restock / release: nothing to project
        return ParsedRecord(record, None)
    return ParsedRecord(record, event)


def dead_letter_event_id(record: ConsumedRecord) -> str:
    return deadletter.dead_letter_event_id(record.topic, record.partition, record.offset)


def dead_letter_envelope(record: ConsumedRecord, reason: str, consumer: str) -> bytes:
    """The dead-letter value (``schemas.deadletter``): where the record came from, why it
    failed, and its bytes."""
    return deadletter.dead_letter_envelope(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
        consumer=consumer,
    )


def key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    return key.decode("utf-8", errors="replace")
