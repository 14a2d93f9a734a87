"""Reading a system's own durable record (PostgreSQL ``orders`` / ``order_items``) after a run.

orderstream and both baselines keep the same two tables; committed units are the quantities
of ``shipped`` orders (committed and not cancelled).
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from bench.figures import DurableRecord

STATUSES = sa.text(
    "SELECT order_id::text AS order_id, status FROM orders WHERE order_id::text = ANY(:ids)"
)
COMMITTED_UNITS = sa.text(
    "SELECT i.product_id::text AS product_id, SUM(i.quantity)::bigint AS units "
    "FROM order_items i JOIN orders o ON o.order_id = i.order_id "
    "WHERE o.status = 'shipped' AND i.product_id::text = ANY(:pids) GROUP BY i.product_id"
)
CHUNK = 5000


def read_durable(
    database_url: str, order_ids: Collection[str], product_ids: Collection[str]
) -> DurableRecord:
    engine = sa.create_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return read_with(conn, order_ids, product_ids)
    finally:
        engine.dispose()


def read_with(
    conn: sa.Connection, order_ids: Collection[str], product_ids: Collection[str]
) -> DurableRecord:
    statuses: dict[str, str] = {}
    ids = list(order_ids)
    for start in range(0, len(ids), CHUNK):
        for row in conn.execute(STATUSES, {"ids": ids[start : start + CHUNK]}):
            statuses[row.order_id] = row.status
    units = {
        row.product_id: int(row.units)
        for row in conn.execute(COMMITTED_UNITS, {"pids": list(product_ids)})
    }
    return DurableRecord(statuses=statuses, committed_units=units)
