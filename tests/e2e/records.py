"""What PostgreSQL holds for the e2e tests' orders and products."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import sqlalchemy as sa
from kafka import KafkaConsumer


def shipped_units(pg: sa.Engine, product_id: str) -> int:
    with pg.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i JOIN orders o"
                    " USING (order_id) WHERE i.product_id = :p AND o.status = 'shipped'"
                ),
                {"p": product_id},
            ).scalar_one()
        )


def rows_per_order(pg: sa.Engine, order_ids: list[str], timeout: float = 30.0) -> Counter[str]:
    """Rows per order id, once every order has its row (the settler tells the read model
    of a rejection before the sink has written the row: wait for the sink, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        with pg.connect() as conn:
            rows = Counter(
                conn.execute(
                    sa.text("SELECT order_id FROM orders WHERE order_id = ANY(:ids)"),
                    {"ids": order_ids},
                ).scalars()
            )
        if set(rows) >= set(order_ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def consumer_at_end(topic: str, bootstrap: str, group_prefix: str) -> KafkaConsumer:
    """A new consumer group on ``topic``, positioned at its end before the test sends anything
    (a downstream system that joins now)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{group_prefix}-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    deadline = time.monotonic() + 60
    while not consumer.assignment():
        assert time.monotonic() < deadline, f"the {group_prefix} consumer got no partitions"
        consumer.poll(timeout_ms=200)
    for tp in consumer.assignment():
        consumer.position(tp)  # resolves "latest" now, before any order is placed
    return consumer
