"""Order records: line requests, reservation results, and the public order events."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from schemas.common import CustomerId, Money, OrderId, ProductId, Quantity, Record, utcnow

RejectReason = Literal[
    "out_of_stock",
    "unknown_product",
    "discontinued",
    "limit_exceeded",
    "price_changed",
    "expired",
    "duplicate_request",
]
OrderStatus = Literal["accepted", "committed", "shipped", "rejected", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"shipped", "rejected", "cancelled"})
# the reasons POST /v1/orders can refuse an order for at the door (409, the sold-out gate)
REFUSAL_REASONS: frozenset[str] = frozenset({"out_of_stock", "discontinued", "limit_exceeded"})
REFUSED_HTTP_STATUS = 409


def refusal_reason(http_status: int, body: object) -> str | None:
    """The sold-out gate's reason when a POST /v1/orders answer (status, parsed JSON body) is
    a refusal at the door, else None. Other 409s (an Idempotency-Key still in flight) are
    not refusals: their problem bodies carry no such reason."""
    if http_status != REFUSED_HTTP_STATUS or not isinstance(body, dict):
        return None
    reason = body.get("reason")
    return reason if isinstance(reason, str) and reason in REFUSAL_REASONS else None


# An order id is 32 lowercase hex characters (a UUID's hex form). Its first
# REQUEST_KEY_CHARS are the request key, a digest of (storefront, Idempotency-Key); the rest
# are random. The ingress keeps one order id per key while the key's claim lives, and
# PostgreSQL holds at most one order per request key (sinks: a unique index), so a key that
# lost its claim (or a bug upstream) cannot buy twice.
REQUEST_KEY_CHARS = 16


def request_key_for(scope: str, idempotency_key: str) -> str:
    """The request key of an Idempotency-Key sent with the credentials ``scope`` names."""
    digest = hashlib.sha256(f"{scope}\0{idempotency_key}".encode()).hexdigest()
    return digest[:REQUEST_KEY_CHARS]


def new_order_id(scope: str, idempotency_key: str) -> str:
    """A fresh order id for a request key: the key's digest, then random hex."""
    return request_key_for(scope, idempotency_key) + secrets.token_hex(16 - REQUEST_KEY_CHARS // 2)


def request_key_of(order_id: str) -> str | None:
    """The request key an order id was made for (see ``new_order_id``); None for an id not
    of that form (32 lowercase hex characters)."""
    if len(order_id) != 32 or order_id.strip("0123456789abcdef"):
        return None
    return order_id[:REQUEST_KEY_CHARS]


class ShippingAddress(msgspec.Struct, kw_only=True, frozen=True):
    """Where an order is shipped to, as the ingress checked it (docs/api.md).

    ``name`` is the recipient; ``country`` an assigned ISO 3166-1 alpha-2 code; ``phone``
    E.164-like (``+`` and digits)."""

    name: str
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str
    country: str
    phone: str | None = None


class PaymentReference(msgspec.Struct, kw_only=True, frozen=True):
    """How the order is paid: the payment provider's token or reference for it, never card
    data (the ingress refuses anything that looks like a card number)."""

    type: str
    token: str


class OrderLineRequested(Record, tag="order_line_requested", tag_field="type", frozen=True):
    """One line of an accepted order; topic ``orders.requests``, key = product_id.

    ``line_count`` tells the settler which line numbers (0..line_count-1) belong to the
    order; lines are identified by ``line_no``, never counted. The order's details
    (``shipping_address``, ``payment_method``) ride on line 0 only, once per order; the
    other lines carry null.
    """

    event_id: str
    order_id: OrderId
    line_no: int
    line_count: int
    customer_id: CustomerId
    product_id: ProductId
    quantity: Quantity
    expected_total: Money | None = None
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None
    requested_at: datetime = msgspec.field(default_factory=utcnow)


class LineReserved(Record, tag="line_reserved", tag_field="type", frozen=True):
    """A line's stock is held; topic ``orders.reservations``, key = order_id."""

    event_id: str
    order_id: OrderId
    line_no: int
    line_count: int
    customer_id: CustomerId
    product_id: ProductId
    quantity: Quantity
    unit_price: Money
    expected_total: Money | None = None
    shipping_address: ShippingAddress | None = None  # line 0 only, as requested
    payment_method: PaymentReference | None = None
    decided_at: datetime = msgspec.field(default_factory=utcnow)


class LineRejected(Record, tag="line_rejected", tag_field="type", frozen=True):
    """A line could not be reserved; topic ``orders.reservations``, key = order_id."""

    event_id: str
    order_id: OrderId
    line_no: int
    line_count: int
    customer_id: CustomerId
    product_id: ProductId
    quantity: Quantity
    reason: RejectReason
    detail: str = ""
    expected_total: Money | None = None
    shipping_address: ShippingAddress | None = None  # line 0 only, as requested
    payment_method: PaymentReference | None = None
    decided_at: datetime = msgspec.field(default_factory=utcnow)


class CancelOrder(Record, tag="cancel_order", tag_field="type", frozen=True):
    """A storefront asks to cancel; topic ``orders.cancellations``, key = order_id.

    Consumed by both the settler (cancels an order still pending) and the sink
    (cancels a committed order it has not shipped yet); see DESIGN.md "Cancellation".
    """

    event_id: str
    order_id: OrderId
    requested_at: datetime = msgspec.field(default_factory=utcnow)


class OrderExpiryCheck(Record, tag="order_expiry_check", tag_field="type", frozen=True):
    """Tick the settler sends itself per partition of ``orders.reservations`` so that the
    hold-time expiry is decided inside the partition's own serial stream."""

    partition: int
    sent_at: datetime = msgspec.field(default_factory=utcnow)


ReservationStreamRecord = LineReserved | LineRejected | CancelOrder | OrderExpiryCheck


class OrderItem(msgspec.Struct, kw_only=True, frozen=True):
    line_no: int
    product_id: ProductId
    quantity: Quantity
    unit_price: Money


class OrderCommitted(Record, tag="order_committed", tag_field="type", frozen=True):
    """Every line is reserved; topic ``orders.committed``, key = order_id.

    ``shipping_address`` and ``payment_method`` are the order's, null when it was placed
    without them (schema_version 2 added them)."""

    event_id: str
    order_id: OrderId
    customer_id: CustomerId
    items: tuple[OrderItem, ...]
    total: Money
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None
    occurred_at: datetime = msgspec.field(default_factory=utcnow)


class OrderRejected(Record, tag="order_rejected", tag_field="type", frozen=True):
    """The order holds no stock; topic ``orders.rejected``, key = order_id."""

    event_id: str
    order_id: OrderId
    customer_id: CustomerId
    reason: RejectReason
    detail: str = ""
    line_no: int | None = None
    occurred_at: datetime = msgspec.field(default_factory=utcnow)


class OrderCancelled(Record, tag="order_cancelled", tag_field="type", frozen=True):
    """The order was cancelled and its stock released; topic ``orders.cancelled``."""

    event_id: str
    order_id: OrderId
    customer_id: CustomerId
    occurred_at: datetime = msgspec.field(default_factory=utcnow)


class OrderShipped(Record, tag="order_shipped", tag_field="type", frozen=True):
    """The order's rows are committed in PostgreSQL; topic ``orders.shipped``.

    ``event_id`` is stable per order (``event_id_for(order_id, "shipped")``), so a
    consumer dedupes the at-least-once relay by it. ``shipping_address`` and
    ``payment_method`` are the order's (null when it was placed without them).
    """

    event_id: str
    order_id: OrderId
    customer_id: CustomerId
    items: tuple[OrderItem, ...]
    total: Money
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None
    occurred_at: datetime = msgspec.field(default_factory=utcnow)


def order_total(items: tuple[OrderItem, ...] | list[OrderItem]) -> Decimal:
    return sum((item.unit_price * item.quantity for item in items), Decimal("0"))
