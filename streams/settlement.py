"""Pure settlement of orders: all lines reserved -> committed, else nothing held.

``settle(order, record, ...)`` takes the order's state (None when unseen) and one record
from ``orders.reservations`` / ``orders.cancellations`` and returns the new state and
the effects to emit. ``expire`` decides the hold-time expiry on an ``OrderExpiryCheck``
tick. Lines are identified by ``line_no`` (0..line_count-1), never counted, so
duplicates are harmless. A record at or below the order's applied offset for its source
is a replay after a crash: state is unchanged and every effect the order implies is
emitted again (all effects are idempotent downstream: stable event ids / command ids).
The order's details (shipping address, payment reference) come with line 0, are kept in
the order's state and leave with its ``OrderCommitted``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from orderstream.core.logs import context
from schemas import topics
from schemas.common import Record, event_id_for
from schemas.inventory import ReleaseLine
from schemas.orders import (
    CancelOrder,
    LineRejected,
    LineReserved,
    OrderCancelled,
    OrderCommitted,
    OrderItem,
    OrderRejected,
)
from streams.records import OrderLine, OrderState

logger = logging.getLogger(__name__)
replace = msgspec.structs.replace

LineRecord = LineReserved | LineRejected
SettleInput = LineReserved | LineRejected | CancelOrder


@dataclass(frozen=True)
class Emit:
    """Send ``value`` to the logical topic ``topic`` (a schemas.topics name) under ``key``."""

    topic: str
    key: str
    value: Record


@dataclass(frozen=True)
class StatusUpdate:
    """Write the order's status to the Redis read model."""

    order_id: str
    status: str
    fields: dict[str, Any]


Effect = Emit | StatusUpdate


def settle(
    order: OrderState | None,
    record: SettleInput,
    *,
    source: str,
    offset: int,
    partition: int,
    now: float,
    retention_s: float,
) -> tuple[OrderState | None, list[Effect]]:
    if order is not None and offset <= order.applied_offset.get(source, -1):
        return order, replay_effects(order)
    if isinstance(record, CancelOrder):
        new, effects = _cancel(order, record, partition, now)
    else:
        if order is None and record.decided_at.timestamp() < now - retention_s:
            logger.warning(
                "stale %s for pruned order %s ignored",
                record.__class__.__name__,
                record.order_id,
                extra=context(order_id=record.order_id, topic=source, offset=offset),
            )
            return None, []
        new, effects = _line(order, record, partition, now)
    return replace(new, applied_offset={**new.applied_offset, source: offset}), effects


def settle_single_line(record: LineRecord) -> list[Effect]:
    """Everything a single-line order implies, from its one line's decision.

    ``reserve_stock`` calls this in the product's partition instead of sending the line
    through ``orders.reservations``: the order is decided as ``settle`` would decide it,
    at the line's decision time, so a replay yields the same events with the same ids.
    """
    if record.line_count != 1:
        raise ValueError(f"order {record.order_id} has {record.line_count} lines")
    _, effects = settle(
        None,
        record,
        source="",
        offset=0,
        partition=-1,  # not kept: the settler never sees the order
        now=record.decided_at.timestamp(),
        retention_s=math.inf,
    )
    return effects


def expire(
    order: OrderState, *, now: float, hold_time_s: float, source: str, tick_offset: int
) -> tuple[OrderState, list[Effect]]:
    """Reject a pending order whose lines did not all arrive within the hold time."""
    if order.phase != "pending" or now - order.first_seen < hold_time_s:
        return order, []
    missing = [n for n in range(order.line_count or 0) if n not in order.lines]
    decided, effects = _decide(
        order, "rejected", now, reason="expired", detail=f"lines {missing} missing"
    )
    applied = {**decided.applied_offset, source: tick_offset}
    return replace(decided, decided_by_tick=tick_offset, applied_offset=applied), effects


def prunable(order: OrderState, *, now: float, retention_s: float) -> bool:
    reference = order.decided_at if order.decided_at is not None else order.first_seen
    return order.phase != "pending" and now - reference >= retention_s


def replay_effects(order: OrderState) -> list[Effect]:
    """Everything a decided order implies (all idempotent downstream)."""
    if order.phase == "pending" or not order.announced:
        return []
    effects = _announce(order)
    for line_no, line in order.lines.items():
        if line.released:
            effects.append(_release_cmd(order, line_no, line))
    return effects


# ------------------------------------------------------------------ transitions
def _cancel(
    order: OrderState | None, record: CancelOrder, partition: int, now: float
) -> tuple[OrderState, list[Effect]]:
    if order is None:
        # unknown yet: remember, so lines arriving later are released
        return OrderState(
            order_id=record.order_id,
            partition=partition,
            first_seen=now,
            phase="cancelled",
            decided_at=now,
            reason="cancelled",
        ), []
    if order.phase != "pending":
        return order, []  # committed: the sink arbitrates; rejected/cancelled: no-op
    return _decide(order, "cancelled", now, reason="cancelled")


def _line(
    order: OrderState | None, record: LineRecord, partition: int, now: float
) -> tuple[OrderState, list[Effect]]:
    if order is None:
        order = OrderState(order_id=record.order_id, partition=partition, first_seen=now)
    if order.customer_id is None:
        order = replace(
            order,
            customer_id=record.customer_id,
            line_count=record.line_count,
            expected_total=record.expected_total,
        )
    if record.line_no in order.lines or not 0 <= record.line_no < (order.line_count or 0):
        return order, []  # duplicate (or a line number outside the order): harmless
    if record.line_no == 0:  # line 0 carries the order's details, once per order
        order = replace(
            order,
            shipping_address=record.shipping_address,
            payment_method=record.payment_method,
        )
    line = OrderLine(
        product_id=record.product_id,
        quantity=record.quantity,
        reserved=isinstance(record, LineReserved),
        unit_price=record.unit_price if isinstance(record, LineReserved) else None,
        reason=record.reason if isinstance(record, LineRejected) else None,
    )
    order = replace(order, lines={**order.lines, record.line_no: line})
    if order.phase == "pending":
        return _after_line(order, record, now)
    # decided already: a reserved late line is released; a cancel-first order announces
    effects: list[Effect] = []
    if line.reserved:
        released = replace(line, released=True)
        order = replace(order, lines={**order.lines, record.line_no: released})
        effects.append(_release_cmd(order, record.line_no, released))
    if not order.announced and order.phase == "cancelled":
        order = replace(order, announced=True)
        effects = _announce(order) + effects
    return order, effects


def _after_line(
    order: OrderState, record: LineRecord, now: float
) -> tuple[OrderState, list[Effect]]:
    if isinstance(record, LineRejected):
        return _decide(
            order,
            "rejected",
            now,
            reason=record.reason,
            detail=record.detail,
            line_no=record.line_no,
        )
    count = order.line_count or 0
    if not all(n in order.lines and order.lines[n].reserved for n in range(count)):
        return order, []
    total = _total(order)
    if order.expected_total is not None and total != order.expected_total:
        return _decide(
            order,
            "rejected",
            now,
            reason="price_changed",
            detail=f"expected {order.expected_total}, total {total}",
        )
    return _decide(order, "committed", now)


def _decide(
    order: OrderState,
    phase: str,
    now: float,
    *,
    reason: str | None = None,
    detail: str = "",
    line_no: int | None = None,
) -> tuple[OrderState, list[Effect]]:
    lines = order.lines
    if phase != "committed":
        lines = {
            n: replace(line, released=line.released or line.reserved) for n, line in lines.items()
        }
    decided = replace(
        order,
        phase=phase,
        lines=lines,
        reason=reason,
        detail=detail,
        reject_line_no=line_no,
        decided_at=now,
        announced=order.customer_id is not None,
    )
    return decided, replay_effects(decided)


# ---------------------------------------------------------------------- effects
def _announce(order: OrderState) -> list[Effect]:
    assert order.customer_id is not None and order.decided_at is not None
    at = datetime.fromtimestamp(order.decided_at, UTC)
    items = _items(order)
    status_fields: dict[str, Any] = {
        "customer_id": order.customer_id,
        "items": [
            {"product_id": line.product_id, "quantity": line.quantity}
            | ({"unit_price": str(line.unit_price)} if line.unit_price is not None else {})
            for _, line in sorted(order.lines.items())
        ],
    }
    event: Record
    if order.phase == "committed":
        total = _total(order)
        status_fields["total"] = str(total)
        event = OrderCommitted(
            event_id=event_id_for(order.order_id, "committed"),
            order_id=order.order_id,
            customer_id=order.customer_id,
            items=items,
            total=total,
            shipping_address=order.shipping_address,
            payment_method=order.payment_method,
            occurred_at=at,
        )
        topic = topics.ORDERS_COMMITTED
    elif order.phase == "rejected":
        status_fields["reason"] = order.reason
        event = OrderRejected(
            event_id=event_id_for(order.order_id, "rejected"),
            order_id=order.order_id,
            customer_id=order.customer_id,
            reason=order.reason,  # type: ignore[arg-type]
            detail=order.detail,
            line_no=order.reject_line_no,
            occurred_at=at,
        )
        topic = topics.ORDERS_REJECTED
    else:
        status_fields["reason"] = "cancelled"
        event = OrderCancelled(
            event_id=event_id_for(order.order_id, "cancelled"),
            order_id=order.order_id,
            customer_id=order.customer_id,
            occurred_at=at,
        )
        topic = topics.ORDERS_CANCELLED
    return [
        Emit(topic, order.order_id, event),
        StatusUpdate(order.order_id, order.phase, status_fields),
    ]


def _release_cmd(order: OrderState, line_no: int, line: OrderLine) -> Emit:
    command = ReleaseLine(
        command_id=event_id_for(order.order_id, line_no, "release"),
        product_id=line.product_id,
        order_id=order.order_id,
        line_no=line_no,
        quantity=line.quantity,
        customer_id=order.customer_id or "",
        reason=order.reason or order.phase,
    )
    return Emit(topics.INVENTORY_COMMANDS, line.product_id, command)


def _items(order: OrderState) -> tuple[OrderItem, ...]:
    return tuple(
        OrderItem(
            line_no=n,
            product_id=line.product_id,
            quantity=line.quantity,
            unit_price=line.unit_price if line.unit_price is not None else Decimal("0"),
        )
        for n, line in sorted(order.lines.items())
    )


def _total(order: OrderState) -> Decimal:
    return sum(
        (line.unit_price * line.quantity for line in order.lines.values() if line.unit_price),
        Decimal("0"),
    )
