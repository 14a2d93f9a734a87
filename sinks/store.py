"""PostgreSQL reads and writes of the sink, all inside a caller's transaction.

Rows go in as one ``INSERT ... SELECT FROM json_to_recordset(:rows)`` per table: the
batch is one JSON document (encoded by msgspec, parsed by PostgreSQL in C), one
statement per table instead of one per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
from sqlalchemy import Connection, text

from sinks.projection import BatchPlan, OutboxRow
from sinks.tables import OUTBOX_CHANNEL

TopicPartitionKey = tuple[str, int]

_encoder = msgspec.json.Encoder(decimal_format="string")

_LOAD_STATUS = text("SELECT order_id, status FROM orders WHERE order_id = ANY(:ids)")
_LOAD_CANCELS = text("SELECT order_id FROM cancel_requests WHERE order_id = ANY(:ids)")
_LOAD_OFFSETS = text(
    "SELECT topic, partition, next_offset FROM consumed_offsets WHERE consumer = :consumer"
)
_SAVE_OFFSETS = text(
    """
    INSERT INTO consumed_offsets (consumer, topic, partition, next_offset)
    SELECT :consumer, t, p, o
    FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]))
        AS x(t, p, o)
    ON CONFLICT (consumer, topic, partition) DO UPDATE
        SET next_offset = excluded.next_offset, updated_at = now()
        WHERE consumed_offsets.next_offset < excluded.next_offset
    """
)
_INSERT_ORDERS = text(
    """
    INSERT INTO orders (order_id, customer_id, status, reason, total_amount)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(order_id text,
        customer_id text, status text, reason text, total_amount numeric)
    ON CONFLICT (order_id) DO NOTHING
    """
)
_INSERT_ITEMS = text(
    """
    INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(order_id text, line_no int,
        product_id text, quantity int, unit_price numeric)
    ON CONFLICT (order_id, line_no) DO NOTHING
    """
)
_INSERT_CANCELS = text(
    """
    INSERT INTO cancel_requests (order_id) SELECT unnest(CAST(:order_id AS text[]))
    ON CONFLICT (order_id) DO NOTHING
    """
)
_INSERT_OUTBOX = text(
    """
    INSERT INTO outbox (event_id, topic, key, payload)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(event_id text, topic text,
        key text, payload text)
    ON CONFLICT (event_id) DO NOTHING
    """
)
_NOTIFY = text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
_UPSERT_PRODUCT = text(
    """
    INSERT INTO products (product_id, name, price, active, limit_per_customer)
    VALUES (:product_id, :name, :price, :active, :limit_per_customer)
    ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, price = excluded.price,
        active = excluded.active, limit_per_customer = excluded.limit_per_customer,
        updated_at = now()
    """
)
_DISCONTINUE = text(
    "UPDATE products SET active = false, updated_at = now() WHERE product_id = :product_id"
)


def load_status(conn: Connection, order_ids: Iterable[str]) -> dict[str, str]:
    ids = list(order_ids)
    if not ids:
        return {}
    return {order_id: status for order_id, status in conn.execute(_LOAD_STATUS, {"ids": ids})}


def load_cancel_requests(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    ids = list(order_ids)
    if not ids:
        return set()
    return {order_id for (order_id,) in conn.execute(_LOAD_CANCELS, {"ids": ids})}


def load_offsets(
    conn: Connection, consumer: str, partitions: Iterable[TopicPartitionKey]
) -> dict[TopicPartitionKey, int]:
    wanted = set(partitions)
    rows = conn.execute(_LOAD_OFFSETS, {"consumer": consumer})
    return {(t, p): o for t, p, o in rows if (t, p) in wanted}


def save_offsets(
    conn: Connection, consumer: str, next_offsets: Mapping[TopicPartitionKey, int]
) -> None:
    """Forward-only: an older owner of a partition can never move it back."""
    if not next_offsets:
        return
    keys = sorted(next_offsets)
    conn.execute(
        _SAVE_OFFSETS,
        {
            "consumer": consumer,
            "topics": [t for t, _ in keys],
            "partitions": [p for _, p in keys],
            "offsets": [next_offsets[k] for k in keys],
        },
    )


def write_plan(conn: Connection, plan: BatchPlan) -> None:
    if plan.orders:
        conn.execute(_INSERT_ORDERS, {"rows": _json(plan.orders)})
    if plan.items:
        conn.execute(_INSERT_ITEMS, {"rows": _json(plan.items)})
    if plan.cancel_requests:
        conn.execute(_INSERT_CANCELS, {"order_id": plan.cancel_requests})
    write_outbox(conn, plan.outbox)
    for change in plan.products.values():
        if change.name is not None:
            conn.execute(
                _UPSERT_PRODUCT,
                {
                    "product_id": change.product_id,
                    "name": change.name,
                    "price": change.price,
                    "active": change.active,
                    "limit_per_customer": change.limit_per_customer,
                },
            )
        else:
            conn.execute(_DISCONTINUE, {"product_id": change.product_id})


def write_outbox(conn: Connection, rows: list[OutboxRow]) -> None:
    """Insert outbox rows (one per event_id, ever) and wake the relay at commit."""
    if not rows:
        return
    conn.execute(_INSERT_OUTBOX, {"rows": _json(rows)})
    conn.execute(_NOTIFY)


def _json(rows: Sequence[object]) -> str:
    """Dataclass rows as one JSON array (Decimal as a string: exact, cast to numeric)."""
    return _encoder.encode(rows).decode("utf-8")
