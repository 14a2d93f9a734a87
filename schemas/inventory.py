"""Inventory commands; topic ``inventory.commands``, key = product_id.

Each command carries a ``command_id`` so that a replayed command is applied once.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from schemas.common import CustomerId, Money, OrderId, ProductId, Quantity, Record, utcnow


class UpsertProduct(Record, tag="upsert_product", tag_field="type", frozen=True):
    """Create or change a product. ``stock`` (when given) sets the units available now;
    ``description`` replaces the product's (null: it has none)."""

    command_id: str
    product_id: ProductId
    name: str
    price: Money
    description: str | None = None
    stock: int | None = None
    limit_per_customer: int | None = None
    issued_at: datetime = msgspec.field(default_factory=utcnow)


class Restock(Record, tag="restock", tag_field="type", frozen=True):
    command_id: str
    product_id: ProductId
    quantity: Quantity
    issued_at: datetime = msgspec.field(default_factory=utcnow)


class Discontinue(Record, tag="discontinue", tag_field="type", frozen=True):
    """Soft delete: the product stays in the catalog, new orders are rejected."""

    command_id: str
    product_id: ProductId
    issued_at: datetime = msgspec.field(default_factory=utcnow)


class ReleaseLine(Record, tag="release_line", tag_field="type", frozen=True):
    """Give back the stock held by one order line (idempotent per order_id, line_no)."""

    command_id: str
    product_id: ProductId
    order_id: OrderId
    line_no: int
    quantity: Quantity
    customer_id: CustomerId
    reason: str
    issued_at: datetime = msgspec.field(default_factory=utcnow)


InventoryCommand = UpsertProduct | Restock | Discontinue | ReleaseLine
