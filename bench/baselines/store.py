"""The baselines' SQL schema (same tables as orderstream's durable record) and connections."""

from __future__ import annotations

import redis
import sqlalchemy as sa

from bench.baselines.config import BaselineSettings

# Stock is never negative at the database level, as in the designs imitated (unsigned column).
SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_id text PRIMARY KEY,
    name text NOT NULL,
    price numeric(12, 2) NOT NULL,
    stock integer NOT NULL CHECK (stock >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    order_id text PRIMARY KEY,
    customer_id text NOT NULL,
    status text NOT NULL,
    reason text,
    total_amount numeric(14, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS order_items (
    order_id text NOT NULL REFERENCES orders (order_id),
    line_no integer NOT NULL,
    product_id text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX IF NOT EXISTS order_items_product ON order_items (product_id);
"""


def create_engine(settings: BaselineSettings) -> sa.Engine:
    return sa.create_engine(
        settings.database_url,
        pool_size=settings.pool_size,
        max_overflow=4,
        pool_pre_ping=False,
        pool_timeout=30,
    )


def create_redis(settings: BaselineSettings) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.pool_size + 8,
        timeout=30,
        socket_timeout=settings.max_wait_s + 5,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


def create_schema(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(6060)"))
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
