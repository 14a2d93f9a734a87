"""The PostgreSQL tables (SQLAlchemy 2 Core). The migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

ORDER_STATUSES = ("shipped", "rejected", "cancelled")

products = Table(
    "products",
    metadata,
    Column("product_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("limit_per_customer", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("description", Text, nullable=True),
)

# Only terminal statuses are ever written: an order row is inserted once, final.
# ``request_key`` (schemas.orders.request_key_of) is owned by at most one order that is not
# rejected: a second order of one Idempotency-Key is written rejected ``duplicate_request``.
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("total_amount", Numeric(14, 2), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("request_key", String(32), nullable=True),
    # the order's details as the order events carry them (schemas.orders), null without them
    Column("shipping_address", JSONB, nullable=True),
    Column("payment_method", JSONB, nullable=True),
    CheckConstraint(
        "status IN ('shipped', 'rejected', 'cancelled')", name="orders_status_terminal"
    ),
    Index("orders_status", "status"),
    Index(
        "orders_one_per_request_key",
        "request_key",
        unique=True,
        postgresql_where=text("status <> 'rejected'"),
    ),
    # a customer's order history, newest first, a page at a time (keyset)
    Index(
        "orders_customer_history",
        "customer_id",
        text("created_at DESC"),
        text("order_id DESC"),
    ),
)

order_items = Table(
    "order_items",
    metadata,
    Column(
        "order_id",
        String(64),
        ForeignKey("orders.order_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("line_no", Integer, nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    PrimaryKeyConstraint("order_id", "line_no"),
    CheckConstraint("quantity > 0", name="order_items_quantity_positive"),
    Index("order_items_product_id", "product_id"),
)

# The tracking row: the next offset to read per (consumer, topic, partition), written in
# the same transaction as the projection it accounts for.
consumed_offsets = Table(
    "consumed_offsets",
    metadata,
    Column("consumer", String(200), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "topic", "partition"),
)

# Events to publish, written in the projection's transaction; the relay sends them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("topic", String(249), nullable=False),
    Column("key", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # the W3C traceparent its event carries on, when traced (orderstream.core.tracing)
    Column("trace", String(55), nullable=True),
    Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
)

cancel_requests = Table(
    "cancel_requests",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

OUTBOX_CHANNEL = "orderstream_outbox"

# Customers who sign in (the ingress writes these; docs/identity.md). ``email`` is kept as
# given and unique without regard to case.
customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("customers_email_lower", func.lower(text("email")), unique=True),
)

# One row per sign-in: the family of refresh tokens rotated from it, revoked as a whole
# (logout, or a refresh token used twice).
customer_sessions = Table(
    "customer_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column(
        "customer_id",
        String(128),
        ForeignKey("customers.customer_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Index("customer_sessions_customer_id", "customer_id"),
)

# Refresh tokens by the SHA-256 of their value (never the value); ``used_at`` is set when
# one is rotated, so a second use is seen.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        String(64),
        ForeignKey("customer_sessions.session_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Index("refresh_tokens_session_id", "session_id"),
)

# Dead letters ``orderstream deadletters replay`` re-published, by envelope event id, and
# where the copy went (``replayed_as``: the event id the copy's dead letter would have).
# Migration 0005, which says why a table.
dead_letter_replays = Table(
    "dead_letter_replays",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("replayed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("target_topic", Text, nullable=True),
    Column("target_partition", Integer, nullable=True),
    Column("target_offset", BigInteger, nullable=True),
    Column("replayed_as", Text, nullable=True),
    Index("dead_letter_replays_replayed_as", "replayed_as"),
)
