"""PostgreSQL reads and writes of the sink, all inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from sinks.projection import BatchPlan, OutboxRow
from sinks.tables import (
    OUTBOX_CHANNEL,
    cancel_requests,
    consumed_offsets,
    order_items,
    orders,
    outbox,
    products,
)

TopicPartitionKey = tuple[str, int]


def load_status(conn: Connection, order_ids: Iterable[str]) -> dict[str, str]:
    ids = list(order_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(orders.c.order_id, orders.c.status).where(orders.c.order_id.in_(ids))
    )
    return {order_id: status for order_id, status in rows}


def load_cancel_requests(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    ids = list(order_ids)
    if not ids:
        return set()
    rows = conn.execute(
        select(cancel_requests.c.order_id).where(cancel_requests.c.order_id.in_(ids))
    )
    return {order_id for (order_id,) in rows}


def load_offsets(
    conn: Connection, consumer: str, partitions: Iterable[TopicPartitionKey]
) -> dict[TopicPartitionKey, int]:
    wanted = set(partitions)
    rows = conn.execute(
        select(
            consumed_offsets.c.topic, consumed_offsets.c.partition, consumed_offsets.c.next_offset
        ).where(consumed_offsets.c.consumer == consumer)
    )
    return {(t, p): o for t, p, o in rows if (t, p) in wanted}


def save_offsets(
    conn: Connection, consumer: str, next_offsets: Mapping[TopicPartitionKey, int]
) -> None:
    """Forward-only: an older owner of a partition can never move it back."""
    if not next_offsets:
        return
    stmt = insert(consumed_offsets).values(
        [
            {"consumer": consumer, "topic": t, "partition": p, "next_offset": o}
            for (t, p), o in sorted(next_offsets.items())
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["consumer", "topic", "partition"],
        set_={"next_offset": stmt.excluded.next_offset, "updated_at": func.now()},
        where=consumed_offsets.c.next_offset < stmt.excluded.next_offset,
    )
    conn.execute(stmt)


def write_plan(conn: Connection, plan: BatchPlan) -> None:
    if plan.orders:
        conn.execute(
            insert(orders).on_conflict_do_nothing(index_elements=["order_id"]),
            [asdict(row) for row in plan.orders],
        )
    if plan.items:
        conn.execute(
            insert(order_items).on_conflict_do_nothing(index_elements=["order_id", "line_no"]),
            [asdict(row) for row in plan.items],
        )
    if plan.cancel_requests:
        conn.execute(
            insert(cancel_requests).on_conflict_do_nothing(index_elements=["order_id"]),
            [{"order_id": order_id} for order_id in plan.cancel_requests],
        )
    write_outbox(conn, plan.outbox)
    for change in plan.products.values():
        if change.name is not None:
            stmt = insert(products).values(
                product_id=change.product_id,
                name=change.name,
                price=change.price,
                active=change.active,
                limit_per_customer=change.limit_per_customer,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["product_id"],
                    set_={
                        "name": stmt.excluded.name,
                        "price": stmt.excluded.price,
                        "active": stmt.excluded.active,
                        "limit_per_customer": stmt.excluded.limit_per_customer,
                        "updated_at": func.now(),
                    },
                )
            )
        else:
            conn.execute(
                update(products)
                .where(products.c.product_id == change.product_id)
                .values(active=False, updated_at=func.now())
            )


def write_outbox(conn: Connection, rows: list[OutboxRow]) -> None:
    """Insert outbox rows (one per event_id, ever) and wake the relay at commit."""
    if not rows:
        return
    conn.execute(
        insert(outbox).on_conflict_do_nothing(index_elements=["event_id"]),
        [asdict(row) for row in rows],
    )
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
