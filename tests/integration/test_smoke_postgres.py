"""PostgreSQL smoke: a row written and read back through SQLAlchemy 2 + psycopg 3."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa


def test_row_round_trip(db_engine: sa.Engine, namespace: str) -> None:
    table = f"smoke_{namespace.strip('.')}"
    with db_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id text PRIMARY KEY, amount numeric(12, 2))"))
    try:
        with db_engine.begin() as conn:
            conn.execute(
                sa.text(f"INSERT INTO {table} VALUES (:id, :amount)"),
                {"id": "o-1", "amount": Decimal("19.99")},
            )
        with db_engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT id, amount FROM {table}")).all()
        assert rows == [("o-1", Decimal("19.99"))]
        assert db_engine.dialect.driver == "psycopg"
    finally:
        with db_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
