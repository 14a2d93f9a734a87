"""Pure mapping of a batch of order events to row operations (no I/O).

``plan_batch`` walks the events in consumption order over what PostgreSQL already
holds and returns everything one transaction must write: order rows (inserted once,
with their terminal status), items, cancel requests, outbox rows, product changes,
and the read-model updates to make after the commit.

One Idempotency-Key buys at most once: an order whose request key
(``schemas.orders.request_key_of``) another order already owns is a duplicate (a retry of
another body after the key's claim was lost, or a bug upstream). It is written rejected
``duplicate_request``; a committed duplicate also gets ``OrderRejected`` and a release of
each line in the outbox, so its stock goes back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from orderstream.core.logs import context
from schemas import codec
from schemas.common import event_id_for, utcnow
from schemas.inventory import Discontinue, ReleaseLine, UpsertProduct
from schemas.orders import (
    CancelOrder,
    OrderCancelled,
    OrderCommitted,
    OrderItem,
    OrderRejected,
    OrderShipped,
    PaymentReference,
    ShippingAddress,
    request_key_of,
)
from schemas.topics import (
    INVENTORY_COMMANDS,
    ORDERS_CANCELLED,
    ORDERS_REJECTED,
    ORDERS_SHIPPED,
    TopicNames,
)
from sinks.arbitration import decide_cancel_request, decide_commit
from sinks.records import SinkEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    customer_id: str
    status: str
    reason: str | None
    total_amount: Decimal | None
    request_key: str | None
    # the order's details (``jsonb``): what it was committed with, null without them
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentReference | None = None


@dataclass(frozen=True, slots=True)
class ItemRow:
    order_id: str
    line_no: int
    product_id: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class OutboxRow:
    event_id: str
    topic: str
    key: str | None
    payload: str
    trace: str | None = None  # the W3C traceparent the relay continues (orderstream.core.tracing)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A read-model write (forward-only in Redis, so replays are harmless)."""

    order_id: str
    status: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ProductChange:
    """The net effect of a batch on one product: an upsert, or only a discontinue."""

    product_id: str
    active: bool
    name: str | None = None  # None: no upsert in this batch, only deactivate
    price: Decimal | None = None
    limit_per_customer: int | None = None
    description: str | None = None


@dataclass(slots=True)
class BatchPlan:
    orders: list[OrderRow] = field(default_factory=list)
    items: list[ItemRow] = field(default_factory=list)
    cancel_requests: list[str] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    read_model: list[StatusUpdate] = field(default_factory=list)
    products: dict[str, ProductChange] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.orders or self.cancel_requests or self.outbox or self.products)


def order_ids_of(events: Sequence[SinkEvent]) -> set[str]:
    return {e.order_id for e in events if not isinstance(e, UpsertProduct | Discontinue)}


DUPLICATE: Final = "duplicate_request"


def request_keys_of(events: Sequence[SinkEvent]) -> set[str]:
    keys = (request_key_of(order_id) for order_id in order_ids_of(events))
    return {key for key in keys if key is not None}


@dataclass(slots=True)
class _Batch:
    """What the plan knows while it walks a batch: statuses, cancels, request key owners."""

    status: dict[str, str]
    cancels: set[str]
    owners: dict[str, str]
    plan: BatchPlan
    topics: TopicNames
    at: datetime

    def duplicate(self, order_id: str) -> bool:
        """True when another order owns this order's request key; else it owns it now."""
        key = request_key_of(order_id)
        if key is None:
            return False
        owner = self.owners.setdefault(key, order_id)
        return owner != order_id


def plan_batch(
    events: Sequence[SinkEvent],
    known_status: Mapping[str, str],
    cancel_requested: Set[str],
    topics: TopicNames,
    now: datetime | None = None,
    key_owners: Mapping[str, str] | None = None,
) -> BatchPlan:
    """Row operations for ``events`` given the orders' status in PostgreSQL, the recorded
    cancel requests and which order owns each request key (among orders not rejected).
    Idempotent: replaying events already projected plans no new rows and no new outbox
    rows."""
    plan = BatchPlan()
    batch = _Batch(
        dict(known_status),
        set(cancel_requested),
        dict(key_owners or {}),
        plan,
        topics,
        now or utcnow(),
    )
    # Nothing in a batch is shipped before the batch commits, so every cancel request the
    # batch holds came in time: take them first (a stable sort keeps the rest in order).
    for event in sorted(events, key=lambda e: not isinstance(e, CancelOrder)):
        if isinstance(event, OrderCommitted):
            _on_committed(event, batch)
        elif isinstance(event, OrderRejected):
            _on_final(event.order_id, event.customer_id, "rejected", event.reason, batch)
        elif isinstance(event, OrderCancelled):
            _on_final(event.order_id, event.customer_id, "cancelled", None, batch)
        elif isinstance(event, CancelOrder):
            _on_cancel_request(event, batch.status, batch.cancels, plan)
        elif isinstance(event, UpsertProduct):
            plan.products[event.product_id] = ProductChange(
                event.product_id,
                True,
                event.name,
                event.price,
                event.limit_per_customer,
                event.description,
            )
        elif isinstance(event, Discontinue):
            prior = plan.products.get(event.product_id)
            plan.products[event.product_id] = (
                ProductChange(event.product_id, False)
                if prior is None
                else replace(prior, active=False)
            )
    return plan


def _on_committed(event: OrderCommitted, batch: _Batch) -> None:
    plan, status, topics, at = batch.plan, batch.status, batch.topics, batch.at
    decision = decide_commit(status.get(event.order_id), event.order_id in batch.cancels)
    fields = order_fields(event.customer_id, _item_lines(event.items), event.total, None)
    if decision == "already_recorded":
        plan.read_model.append(StatusUpdate(event.order_id, status[event.order_id], fields))
        return
    key = request_key_of(event.order_id)
    if batch.duplicate(event.order_id):
        logger.warning(
            "order %s: its Idempotency-Key already has order %s; rejecting it, releasing its lines",
            event.order_id,
            batch.owners[key or ""],
            extra=context(order_id=event.order_id, event_id=event.event_id),
        )
        status[event.order_id] = "rejected"
        plan.orders.append(
            OrderRow(event.order_id, event.customer_id, "rejected", DUPLICATE, None, key)
        )
        plan.read_model.append(
            StatusUpdate(event.order_id, "rejected", {**fields, "reason": DUPLICATE})
        )
        plan.outbox.append(duplicate_row(event, topics, at))
        plan.outbox.extend(release_rows(event, topics, at, reason=DUPLICATE))
        return
    final = "shipped" if decision == "ship" else "cancelled"
    status[event.order_id] = final
    plan.orders.append(
        OrderRow(
            event.order_id,
            event.customer_id,
            final,
            None,
            event.total,
            key,
            event.shipping_address,
            event.payment_method,
        )
    )
    plan.items.extend(
        ItemRow(event.order_id, i.line_no, i.product_id, i.quantity, i.unit_price)
        for i in event.items
    )
    plan.read_model.append(StatusUpdate(event.order_id, final, fields))
    if decision == "ship":
        plan.outbox.append(shipped_row(event, topics, at))
    else:
        logger.info(
            "order %s cancelled before shipping; releasing its lines",
            event.order_id,
            extra=context(order_id=event.order_id, event_id=event.event_id),
        )
        plan.outbox.append(cancelled_row(event, topics, at))
        plan.outbox.extend(release_rows(event, topics, at))


def _on_final(
    order_id: str, customer_id: str, final: str, reason: str | None, batch: _Batch
) -> None:
    """A rejection or the settler's cancellation: the order holds no stock."""
    current = batch.status.get(order_id)
    if current is None:
        if final != "rejected" and batch.duplicate(order_id):
            final, reason = "rejected", DUPLICATE
        batch.status[order_id] = final
        batch.plan.orders.append(
            OrderRow(order_id, customer_id, final, reason, None, request_key_of(order_id))
        )
        fields = {"customer_id": customer_id, "reason": reason}
        batch.plan.read_model.append(StatusUpdate(order_id, final, fields))
    elif current == final:
        fields = {"customer_id": customer_id, "reason": reason}
        batch.plan.read_model.append(StatusUpdate(order_id, final, fields))
    else:
        logger.warning(
            "order %s is already %s in PostgreSQL; ignoring %s",
            order_id,
            current,
            final,
            extra=context(order_id=order_id),
        )


def _on_cancel_request(
    event: CancelOrder, status: dict[str, str], cancels: set[str], plan: BatchPlan
) -> None:
    decision = decide_cancel_request(status.get(event.order_id))
    if decision == "record":
        if event.order_id not in cancels:
            cancels.add(event.order_id)
            plan.cancel_requests.append(event.order_id)
    elif decision == "too_late":
        logger.info(
            "cancel of order %s ignored: already shipped",
            event.order_id,
            extra=context(order_id=event.order_id, event_id=event.event_id),
        )


def order_fields(
    customer_id: str,
    lines: Iterable[tuple[str, int, Decimal]],
    total: Decimal | None,
    reason: str | None,
) -> dict[str, Any]:
    """The read-model fields of an order: customer, (product, quantity, unit price) lines,
    total and reason (absent ones left out)."""
    fields: dict[str, Any] = {"customer_id": customer_id, "reason": reason}
    items = [
        {"product_id": product_id, "quantity": quantity, "unit_price": str(price)}
        for product_id, quantity, price in lines
    ]
    if items:
        fields["items"] = items
    if total is not None:
        fields["total"] = str(total)
    return fields


def _item_lines(items: Sequence[OrderItem]) -> list[tuple[str, int, Decimal]]:
    return [(i.product_id, i.quantity, i.unit_price) for i in items]


def shipped_row(event: OrderCommitted, topics: TopicNames, at: datetime) -> OutboxRow:
    shipped = OrderShipped(
        event_id=event_id_for(event.order_id, "shipped"),
        order_id=event.order_id,
        customer_id=event.customer_id,
        items=event.items,
        total=event.total,
        shipping_address=event.shipping_address,
        payment_method=event.payment_method,
        occurred_at=at,
    )
    return _row(shipped.event_id, topics(ORDERS_SHIPPED), event.order_id, shipped)


def cancelled_row(event: OrderCommitted, topics: TopicNames, at: datetime) -> OutboxRow:
    cancelled = OrderCancelled(
        event_id=event_id_for(event.order_id, "cancelled"),
        order_id=event.order_id,
        customer_id=event.customer_id,
        occurred_at=at,
    )
    return _row(cancelled.event_id, topics(ORDERS_CANCELLED), event.order_id, cancelled)


def duplicate_row(event: OrderCommitted, topics: TopicNames, at: datetime) -> OutboxRow:
    rejected = OrderRejected(
        event_id=event_id_for(event.order_id, "rejected"),
        order_id=event.order_id,
        customer_id=event.customer_id,
        reason=DUPLICATE,
        detail="another order holds this Idempotency-Key",
        occurred_at=at,
    )
    return _row(rejected.event_id, topics(ORDERS_REJECTED), event.order_id, rejected)


def release_rows(
    event: OrderCommitted, topics: TopicNames, at: datetime, reason: str = "cancelled"
) -> list[OutboxRow]:
    rows = []
    for item in event.items:
        release = ReleaseLine(
            command_id=event_id_for(event.order_id, item.line_no, "release"),
            product_id=item.product_id,
            order_id=event.order_id,
            line_no=item.line_no,
            quantity=item.quantity,
            customer_id=event.customer_id,
            reason=reason,
            issued_at=at,
        )
        rows.append(_row(release.command_id, topics(INVENTORY_COMMANDS), item.product_id, release))
    return rows


def _row(event_id: str, topic: str, key: str, record: object) -> OutboxRow:
    return OutboxRow(event_id, topic, key, codec.encode(record).decode("utf-8"))
