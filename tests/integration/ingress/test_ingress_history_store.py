"""The settled half of the order history on PostgreSQL (``SqlStore.customer_orders``):
keyset pages newest first, the orders Redis lists left out, on the history index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ingress.history import Position, micros
from ingress.store import SqlStore
from orderstream.core.tables import order_items, orders


def test_pages_are_newest_first_by_keyset_and_leave_out_what_redis_lists(
    stack: Any, db_engine: sa.Engine
) -> None:
    customer = f"hist-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 6, 1, tzinfo=UTC)
    # six orders, two of them at the same moment (the order id breaks the tie)
    times = [start + timedelta(seconds=n) for n in (0, 1, 2, 2, 3, 4)]
    ids = [uuid.uuid4().hex for _ in times]
    with db_engine.begin() as conn:
        for order_id, at in zip(ids, times, strict=True):
            conn.execute(
                sa.insert(orders).values(
                    order_id=order_id,
                    customer_id=customer,
                    status="shipped",
                    total_amount=5,
                    created_at=at,
                    updated_at=at,
                )
            )
            conn.execute(
                sa.insert(order_items).values(
                    order_id=order_id, line_no=0, product_id="p", quantity=1, unit_price=5
                )
            )
    newest_first = [i for _, i in sorted(zip(times, ids, strict=True), reverse=True)]
    store = SqlStore(stack.settings.read_database_url)
    excluded = newest_first[1]
    seen: list[str] = []
    before = None
    while True:
        rows = store.customer_orders(customer, before, [excluded], 2)
        if not rows:
            break
        assert all(
            r["items"] == [{"product_id": "p", "quantity": 1, "unit_price": "5.00"}] for r in rows
        )
        seen += [r["order_id"] for r in rows]
        last = rows[-1]
        before = Position(micros(last["created_at"]), last["order_id"])
    assert seen == [i for i in newest_first if i != excluded]
    assert set(store.orders_by_id([excluded])) == {excluded}
    with db_engine.begin() as conn:
        # a small table may be read whole; what matters is that the index serves the query
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = (
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT * FROM orders WHERE customer_id = :c"
                    " AND (created_at, order_id) < (now(), 'x')"
                    " ORDER BY created_at DESC, order_id DESC LIMIT 21"
                ),
                {"c": customer},
            )
            .scalars()
            .all()
        )
    assert any("orders_customer_history" in line for line in plan), plan
