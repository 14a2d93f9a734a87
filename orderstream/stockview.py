"""Read the stock table from outside the workers: the latest product records of the
``stock_by_product`` changelog, which is what every worker restores its state from."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from orderstream.settings import Settings
from streams.records import ProductState, decode_stock, is_product_key
from streams.tables import STOCK_TABLE, changelog_topic


@dataclass(frozen=True)
class StockSnapshot:
    product_id: str
    available: int
    added: int
    reserved: int
    released: int
    active: bool


def stock_changelog_topic(settings: Settings) -> str:
    return changelog_topic(settings, STOCK_TABLE)


def stock_snapshot(
    bootstrap: str, topic: str, product_ids: list[str] | None = None
) -> dict[str, StockSnapshot]:
    """Latest state per product, read from the changelog to its current end."""
    wanted = {p.encode() for p in product_ids} if product_ids is not None else None
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return {}
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        latest: dict[bytes, bytes | None] = {}
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    key = record.key
                    if key is None or not is_product_key(key):
                        continue
                    if wanted is None or key in wanted:
                        latest[key] = record.value
    finally:
        consumer.close()
    snapshot = {}
    for key, value in latest.items():
        if value is None:  # tombstone
            continue
        state = decode_stock(value)
        if isinstance(state, ProductState):
            snapshot[key.decode()] = StockSnapshot(
                product_id=state.product_id,
                available=state.available,
                added=state.added,
                reserved=state.reserved,
                released=state.released,
                active=state.active,
            )
    return snapshot
