"""The Alembic migrations: head creates the sink's tables; down and up again is clean."""

from __future__ import annotations

import sqlalchemy as sa
from sink_helpers import scratch_database

from orderstream.stack.testing import StackHandle
from sinks.migrate import downgrade, upgrade

TABLES = {"products", "orders", "order_items", "consumed_offsets", "outbox", "cancel_requests"}


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
