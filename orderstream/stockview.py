"""Read the stock table from outside the workers: the latest product records of the
``stock_by_product`` changelog, which is what every worker restores its state from."""

from __future__ import annotations

from dataclasses import dataclass

from orderstream.core.settings import Settings
from orderstream.topicread import read_to_end
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


def product_states(
    bootstrap: str, topic: str, product_ids: list[str] | None = None
) -> dict[str, ProductState]:
    """Latest product record per product (with its version, ``applied_commands`` /
    ``applied_requests``), read from the changelog to its current end; tombstones left out."""
    wanted = {p.encode() for p in product_ids} if product_ids is not None else None
    latest: dict[bytes, bytes | None] = {}
    for record in read_to_end(bootstrap, topic):
        key = record.key
        if key is not None and is_product_key(key) and (wanted is None or key in wanted):
            latest[key] = record.value
    states = {}
    for key, value in latest.items():
        if value is None:  # tombstone
            continue
        state = decode_stock(value)
        if isinstance(state, ProductState):
            states[key.decode()] = state
    return states


def stock_snapshot(
    bootstrap: str, topic: str, product_ids: list[str] | None = None
) -> dict[str, StockSnapshot]:
    """Latest state per product, read from the changelog to its current end."""
    return {
        product_id: StockSnapshot(
            product_id=state.product_id,
            available=state.available,
            added=state.added,
            reserved=state.reserved,
            released=state.released,
            active=state.active,
        )
        for product_id, state in product_states(bootstrap, topic, product_ids).items()
    }
