"""Pure stock decisions for one product: no Faust, no I/O, no offsets.

``decide_reservation`` answers one order line; ``apply_command`` applies an upsert,
restock or discontinue; ``release_hold`` gives back a held line. Idempotency and
crash healing are layered on top by ``streams.ledger``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from schemas.inventory import Discontinue, Restock, UpsertProduct
from schemas.orders import OrderLineRequested
from streams.records import LineState, ProductState

replace = msgspec.structs.replace
CatalogCommand = UpsertProduct | Restock | Discontinue


def decide_reservation(
    request: OrderLineRequested,
    product: ProductState | None,
    held_by_customer: int,
    now: datetime,
) -> tuple[ProductState | None, LineState]:
    """Reserve ``request`` from ``product`` or reject it. Returns (new product, line)."""
    reason: str | None = None
    detail = ""
    if product is None:
        reason = "unknown_product"
    elif not product.active:
        reason = "discontinued"
    elif (
        product.limit_per_customer is not None
        and held_by_customer + request.quantity > product.limit_per_customer
    ):
        reason = "limit_exceeded"
        detail = f"limit {product.limit_per_customer}, held {held_by_customer}"
    elif product.available < request.quantity:
        reason = "out_of_stock"
        detail = f"available {product.available}"
    line = LineState(
        order_id=request.order_id,
        line_no=request.line_no,
        line_count=request.line_count,
        customer_id=request.customer_id,
        product_id=request.product_id,
        quantity=request.quantity,
        status="rejected" if reason else "held",
        unit_price=None if reason or product is None else product.price,
        reason=reason,
        detail=detail,
        expected_total=request.expected_total,
        shipping_address=request.shipping_address,
        payment_method=request.payment_method,
        decided_at=now,
    )
    if reason or product is None:
        return product, line
    return take_units(product, request.quantity), line


def take_units(product: ProductState, quantity: int) -> ProductState:
    return replace(
        product, available=product.available - quantity, reserved=product.reserved + quantity
    )


def release_hold(product: ProductState, quantity: int) -> ProductState:
    return replace(
        product, available=product.available + quantity, released=product.released + quantity
    )


def apply_command(command: CatalogCommand, product: ProductState | None) -> ProductState | None:
    """The product after a catalog command (None: unknown product, command ignored)."""
    if isinstance(command, UpsertProduct):
        if product is None:
            stock = max(0, command.stock or 0)
            return ProductState(
                product_id=command.product_id,
                name=command.name,
                price=command.price,
                description=command.description,
                available=stock,
                active=True,
                limit_per_customer=command.limit_per_customer,
                added=stock,
            )
        changed = replace(
            product,
            name=command.name,
            price=command.price,
            description=command.description,
            active=True,
            limit_per_customer=command.limit_per_customer,
        )
        if command.stock is None:
            return changed
        # ``stock`` sets the units available now; the difference counts as added.
        stock = max(0, command.stock)
        return replace(changed, available=stock, added=changed.added + stock - changed.available)
    if product is None:
        return None
    if isinstance(command, Restock):
        return replace(
            product,
            available=product.available + command.quantity,
            added=product.added + command.quantity,
        )
    return replace(product, active=False)
