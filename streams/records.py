"""Table values of the stream processors (internal, msgpack on the changelog).

``stock_by_product`` holds five kinds of record in ONE table, so that one changelog
partition is a single ordered log of every write for a product partition (a restore is
then an exact prefix of that log, see ``ledger``):

  key ``{product_id}``                     ProductState
  key ``L\\x1f{order_id}\\x1f{line_no}``     LineState (one per order line decided)
  key ``C\\x1f{product_id}\\x1f{customer}``  CustomerHolding (units held by a customer)
  key ``W\\x1fpruned\\x1f{partition}``      PruneMark (how far line records were pruned)
  key ``S\\x1fsource\\x1f{partition}``      SourceMark (how far its sources were applied)

Line records are deleted once older than ``stock_line_retention_s`` (``ledger.prune_lines``);
the partition's PruneMark then tells a replay of their requests from a never-seen one.

Product ids never contain ``\\x1f``, so the key spaces cannot collide. ``pending_orders``
holds one ``OrderState`` per order id, and one ``SourceMark`` per partition under the same
key as here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from schemas.orders import PaymentReference, ShippingAddress

LineStatus = Literal["held", "released", "rejected"]
OrderPhase = Literal["pending", "committed", "rejected", "cancelled"]
SEP = "\x1f"


class ProductState(msgspec.Struct, tag="p", kw_only=True, frozen=True):
    product_id: str
    name: str
    price: Decimal
    description: str | None = None
    available: int
    active: bool = True
    limit_per_customer: int | None = None
    # counters for conservation checks: available == added - reserved + released
    added: int = 0
    reserved: int = 0
    released: int = 0
    # idempotency: last source offsets applied to this record, recent command ids
    applied_requests: int = -1
    applied_commands: int = -1
    recent_commands: tuple[str, ...] = ()


class LineState(msgspec.Struct, tag="l", kw_only=True, frozen=True):
    order_id: str
    line_no: int
    line_count: int
    customer_id: str
    product_id: str
    quantity: int
    status: LineStatus
    unit_price: Decimal | None = None
    reason: str | None = None
    detail: str = ""
    expected_total: Decimal | None = None
    # the order's details, on line 0 only (the request carries them there)
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None
    decided_at: datetime
    request_offset: int = -1
    released_offset: int = -1


class CustomerHolding(msgspec.Struct, tag="c", kw_only=True, frozen=True):
    held: int = 0
    applied_requests: int = -1
    applied_commands: int = -1


class PruneMark(msgspec.Struct, tag="w", kw_only=True, frozen=True):
    """One per partition: a request of this partition at or below ``request_offset`` whose
    line record is missing was decided, and its record pruned (``ledger.prune_lines``)."""

    request_offset: int = -1


class SourceMark(msgspec.Struct, tag="s", kw_only=True, frozen=True):
    """One per partition: the offset of the last record of each source topic whose effects
    the partition holds (``streams.continuity``)."""

    offsets: dict[str, int] = msgspec.field(default_factory=dict)


StockRecord = ProductState | LineState | CustomerHolding | PruneMark | SourceMark
LINE_PREFIX = f"L{SEP}".encode()


class OrderLine(msgspec.Struct, kw_only=True, frozen=True):
    product_id: str
    quantity: int
    reserved: bool
    unit_price: Decimal | None = None
    reason: str | None = None
    released: bool = False


class OrderState(msgspec.Struct, kw_only=True, frozen=True):
    order_id: str
    partition: int
    first_seen: float
    phase: OrderPhase = "pending"
    customer_id: str | None = None
    line_count: int | None = None
    expected_total: Decimal | None = None
    # the order's details, from its line 0 (kept until the order is pruned)
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None
    lines: dict[int, OrderLine] = msgspec.field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    reject_line_no: int | None = None
    decided_at: float | None = None
    announced: bool = False  # the terminal event was emitted (cancel-before-lines waits)
    applied_offset: dict[str, int] = msgspec.field(default_factory=dict)
    decided_by_tick: int | None = None


def product_key(product_id: str) -> bytes:
    return product_id.encode()


def line_key(order_id: str, line_no: int) -> bytes:
    return f"L{SEP}{order_id}{SEP}{line_no}".encode()


def prune_mark_key(partition: int) -> bytes:
    return f"W{SEP}pruned{SEP}{partition}".encode()


SOURCE_MARK_PREFIX = f"S{SEP}source{SEP}".encode()


def source_mark_key(partition: int) -> bytes:
    return SOURCE_MARK_PREFIX + str(partition).encode()


def customer_key(product_id: str, customer_id: str) -> bytes:
    return f"C{SEP}{product_id}{SEP}{customer_id}".encode()


def is_product_key(key: bytes) -> bool:
    return b"\x1f" not in key


_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_stock_decoder = msgspec.msgpack.Decoder(StockRecord)
_order_decoder = msgspec.msgpack.Decoder(OrderState)


def encode(record: StockRecord | OrderState) -> bytes:
    return _encoder.encode(record)


def decode_stock(data: bytes) -> StockRecord:
    """Decode a ``stock_by_product`` value (also usable on its changelog topic)."""
    return _stock_decoder.decode(data)


def decode_order(data: bytes) -> OrderState:
    return _order_decoder.decode(data)
