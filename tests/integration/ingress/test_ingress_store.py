"""The ingress' PostgreSQL fallback reads what the sink's tables hold (real PostgreSQL)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa

from ingress.store import SqlStore
from orderstream.core.tables import order_items, orders, products


def test_fallback_reads_the_sinks_rows(stack, db_engine: sa.Engine) -> None:
    order_id, product_id = f"store-{uuid.uuid4().hex}", f"STORE-{uuid.uuid4().hex[:8]}"
    with db_engine.begin() as conn:
        conn.execute(
            products.insert().values(
                product_id=product_id,
                name="Kettle",
                price=Decimal("19.99"),
                active=False,
                description="1.7 l, stainless steel",
            )
        )
        conn.execute(
            orders.insert().values(
                order_id=order_id, customer_id="c", status="shipped", total_amount=Decimal("39.98")
            )
        )
        conn.execute(
            order_items.insert().values(
                order_id=order_id,
                line_no=0,
                product_id=product_id,
                quantity=2,
                unit_price=Decimal("19.99"),
            )
        )
    store = SqlStore(stack.settings.database_url)
    try:
        assert store.order(order_id) == {
            "order_id": order_id,
            "customer_id": "c",  # who may see it (a customer's token: their own only)
            "status": "shipped",
            "reason": None,
            "total": "39.98",
            "items": [{"product_id": product_id, "quantity": 2, "unit_price": "19.99"}],
        }
        assert store.order(f"missing-{order_id}") is None
        assert store.products(product_id) == [
            {
                "product_id": product_id,
                "name": "Kettle",
                "description": "1.7 l, stainless steel",
                "price": "19.99",
                "available": 0,
                "active": False,
                "limit_per_customer": None,
            }
        ]
        # a page is cut by PostgreSQL: ids after ``after``, in order, at most ``limit``
        page = store.products(after=product_id[:-1], limit=2)
        assert page is not None and page[0]["product_id"] == product_id, page
        assert [p["product_id"] for p in page] == sorted(p["product_id"] for p in page)
        assert all(p["product_id"] > product_id[:-1] for p in page) and len(page) <= 2
    finally:
        with db_engine.begin() as conn:
            conn.execute(orders.delete().where(orders.c.order_id == order_id))
            conn.execute(products.delete().where(products.c.product_id == product_id))
        store.engine.dispose()
