"""The Alembic migrations: head creates the sink's tables; down and up again is clean."""

from __future__ import annotations

import sqlalchemy as sa
from sink_helpers import scratch_database

from orderstream.stack.testing import StackHandle
from sinks.migrate import downgrade, upgrade

TABLES = {
    "products",
    "orders",
    "order_items",
    "consumed_offsets",
    "outbox",
    "cancel_requests",
    "dead_letter_replays",
}


def test_upgrade_downgrade_upgrade(stack: StackHandle) -> None:
    with scratch_database(stack.settings.database_url) as url:
        engine = sa.create_engine(url)
        try:
            upgrade(url)
            assert TABLES <= set(sa.inspect(engine).get_table_names())
            upgrade(url)  # idempotent at head
            downgrade(url, "base")
            sa.inspect(engine).clear_cache()
            assert not TABLES & set(sa.inspect(engine).get_table_names())
            upgrade(url)
            assert TABLES <= set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()


def test_0004_adds_the_order_details_and_the_product_description(stack: StackHandle) -> None:
    def columns(engine: sa.Engine, table: str) -> set[str]:
        sa.inspect(engine).clear_cache()
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}

    with scratch_database(stack.settings.database_url) as url:
        engine = sa.create_engine(url)
        try:
            upgrade(url)
            assert {"shipping_address", "payment_method"} <= columns(engine, "orders")
            assert "description" in columns(engine, "products")
            with engine.connect() as conn:
                kinds = dict(
                    conn.execute(
                        sa.text(
                            "SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_name = 'orders'"
                        )
                    ).all()
                )
            assert kinds["shipping_address"] == kinds["payment_method"] == "jsonb"
            downgrade(url, "0002")
            assert not {"shipping_address", "payment_method"} & columns(engine, "orders")
            assert "description" not in columns(engine, "products")
            upgrade(url)
            assert "description" in columns(engine, "products")
        finally:
            engine.dispose()
