"""Builders shared by the streams unit tests (pure data, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from schemas.common import event_id_for
from schemas.inventory import Discontinue, ReleaseLine, Restock, UpsertProduct
from schemas.orders import OrderLineRequested
from streams.records import StockRecord

NOW = datetime(2025, 1, 1, tzinfo=UTC)


class DictState:
    """ledger.StockState over a dict, recording the write log (for torn-write tests)."""

    def __init__(self) -> None:
        self.data: dict[bytes, StockRecord] = {}
        self.log: list[tuple[bytes, StockRecord | None]] = []  # None: deleted

    def get(self, key: bytes) -> StockRecord | None:
        return self.data.get(key)

    def set(self, key: bytes, record: StockRecord) -> None:
        self.data[key] = record
        self.log.append((key, record))

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)
        self.log.append((key, None))


def request(
    order_id: str,
    product_id: str = "SKU-1",
    quantity: int = 1,
    *,
    line_no: int = 0,
    line_count: int = 1,
    customer_id: str = "c1",
) -> OrderLineRequested:
    return OrderLineRequested(
        event_id=event_id_for(order_id, line_no, "requested"),
        order_id=order_id,
        line_no=line_no,
        line_count=line_count,
        customer_id=customer_id,
        product_id=product_id,
        quantity=quantity,
        requested_at=NOW,
    )


def upsert(
    product_id: str = "SKU-1",
    stock: int | None = 10,
    *,
    price: str = "9.99",
    limit: int | None = None,
    command_id: str | None = None,
) -> UpsertProduct:
    return UpsertProduct(
        command_id=command_id or f"up-{product_id}-{stock}-{limit}",
        product_id=product_id,
        name=product_id.lower(),
        price=Decimal(price),
        stock=stock,
        limit_per_customer=limit,
    )


def restock(product_id: str, quantity: int, command_id: str) -> Restock:
    return Restock(command_id=command_id, product_id=product_id, quantity=quantity)


def discontinue(product_id: str, command_id: str = "disc") -> Discontinue:
    return Discontinue(command_id=command_id, product_id=product_id)


def release(order_id: str, product_id: str, quantity: int, line_no: int = 0) -> ReleaseLine:
    return ReleaseLine(
        command_id=event_id_for(order_id, line_no, "release"),
        product_id=product_id,
        order_id=order_id,
        line_no=line_no,
        quantity=quantity,
        customer_id="c1",
        reason="cancelled",
    )
