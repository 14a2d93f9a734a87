"""PostgreSQL reads and writes of the sink, all inside a caller's transaction.

Rows go in as one ``INSERT ... SELECT FROM json_to_recordset(:rows)`` per table: the
batch is one JSON document (encoded by msgspec, parsed by PostgreSQL in C), one
statement per table instead of one per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import msgspec
from sqlalchemy import Connection, text

from orderstream.core.tables import OUTBOX_CHANNEL
from sinks.projection import BatchPlan, OutboxRow, StatusUpdate, order_fields

TopicPartitionKey = tuple[str, int]

_encoder = msgspec.json.Encoder(decimal_format="string")

_LOAD_KNOWN = text(
    """
    SELECT i.id, o.status, c.order_id IS NOT NULL
    FROM unnest(CAST(:ids AS text[])) AS i(id)
    LEFT JOIN orders o ON o.order_id = i.id
    LEFT JOIN cancel_requests c ON c.order_id = i.id
    WHERE o.order_id IS NOT NULL OR c.order_id IS NOT NULL
    """
)
_LOAD_KEY_OWNERS = text(
    """
    SELECT request_key, order_id FROM orders
    WHERE request_key = ANY(CAST(:keys AS text[])) AND status <> 'rejected'
    """
)
# Orders written up to ``window`` seconds before this shard's last batch, with their items.
_LOAD_RECENT = text(
    """
    WITH last AS (
        SELECT max(updated_at) AS at FROM consumed_offsets
        WHERE consumer = :consumer AND starts_with(topic, :prefix) AND partition % :shards = :shard
    )
    SELECT o.order_id, o.status, o.reason, o.customer_id, o.total_amount,
        coalesce(json_agg(json_build_array(i.product_id, i.quantity, i.unit_price::text)
            ORDER BY i.line_no) FILTER (WHERE i.order_id IS NOT NULL), '[]')
    FROM last JOIN orders o ON o.updated_at >= last.at - make_interval(secs => :window)
    LEFT JOIN order_items i USING (order_id)
    GROUP BY o.order_id
    """
)
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
    INSERT INTO orders (order_id, customer_id, status, reason, total_amount, request_key,
        shipping_address, payment_method)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(order_id text,
        customer_id text, status text, reason text, total_amount numeric, request_key text,
        shipping_address jsonb, payment_method jsonb)
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
    INSERT INTO outbox (event_id, topic, key, payload, trace)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(event_id text, topic text,
        key text, payload text, trace text)
    ON CONFLICT (event_id) DO NOTHING
    """
)
_NOTIFY = text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
# One statement for every product a batch upserts, and one for those it only discontinues: a
# catalog import of thousands of products costs two round trips per batch, not one each.
_UPSERT_PRODUCTS = text(
    """
    INSERT INTO products (product_id, name, price, active, limit_per_customer, description)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(product_id text, name text,
        price numeric, active boolean, limit_per_customer int, description text)
    ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, price = excluded.price,
        active = excluded.active, limit_per_customer = excluded.limit_per_customer,
        description = excluded.description, updated_at = now()
    """
)
_DISCONTINUE = text(
    """
    UPDATE products SET active = false, updated_at = now()
    WHERE product_id = ANY(CAST(:ids AS text[]))
    """
)


def load_known(conn: Connection, order_ids: Iterable[str]) -> tuple[dict[str, str], set[str]]:
    """What PostgreSQL holds for these orders: their status, and which have a cancel
    request (one round trip)."""
    ids = list(order_ids)
    status: dict[str, str] = {}
    cancels: set[str] = set()
    if not ids:
        return status, cancels
    for order_id, order_status, cancel_requested in conn.execute(_LOAD_KNOWN, {"ids": ids}):
        if order_status is not None:
            status[order_id] = order_status
        if cancel_requested:
            cancels.add(order_id)
    return status, cancels


def load_key_owners(conn: Connection, request_keys: Iterable[str]) -> dict[str, str]:
    """Which order owns each of these request keys (among orders not rejected). Another
    sink shard may insert an owner after this read: the unique index then fails this batch,
    which is retried and reads it."""
    keys = list(request_keys)
    if not keys:
        return {}
    return {key: order_id for key, order_id in conn.execute(_LOAD_KEY_OWNERS, {"keys": keys})}


def load_recent_statuses(
    conn: Connection, consumer: str, prefix: str, shard: int, shards: int, window_s: float
) -> list[StatusUpdate]:
    """The read-model statuses of the orders written in the ``window_s`` before this shard's
    last committed batch (and other shards' of that time: rewriting them is harmless)."""
    params = {
        "consumer": consumer,
        "prefix": prefix,
        "shard": shard,
        "shards": shards,
        "window": window_s,
    }
    updates = []
    for order_id, status, reason, customer_id, total, items in conn.execute(_LOAD_RECENT, params):
        lines = [(product_id, quantity, Decimal(price)) for product_id, quantity, price in items]
        updates.append(
            StatusUpdate(order_id, status, order_fields(customer_id, lines, total, reason))
        )
    return updates


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
    upserts = [c for c in plan.products.values() if c.name is not None]
    if upserts:
        conn.execute(_UPSERT_PRODUCTS, {"rows": _json(upserts)})
    discontinued = [c.product_id for c in plan.products.values() if c.name is None]
    if discontinued:
        conn.execute(_DISCONTINUE, {"ids": discontinued})


def write_outbox(conn: Connection, rows: list[OutboxRow]) -> None:
    """Insert outbox rows (one per event_id, ever) and wake the relay at commit."""
    if not rows:
        return
    conn.execute(_INSERT_OUTBOX, {"rows": _json(rows)})
    conn.execute(_NOTIFY)


def _json(rows: Sequence[object]) -> str:
    """Dataclass rows as one JSON array (Decimal as a string: exact, cast to numeric)."""
    return _encoder.encode(rows).decode("utf-8")
