"""The PostgreSQL fallback of the read side (SQLAlchemy Core; tables owned by the sink).

Coded against the sink's shape: ``orders(order_id, customer_id, status, reason,
total_amount, created_at, updated_at)``, ``order_items(order_id, line_no, product_id,
quantity, unit_price)`` and, if present, ``products``. A missing table reads as "not found".
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ingress.errors import Unavailable

logger = logging.getLogger(__name__)

metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("customer_id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("reason", sa.String),
    sa.Column("total_amount", sa.Numeric),
)
order_items = sa.Table(
    "order_items",
    metadata,
    sa.Column("order_id", sa.String),
    sa.Column("line_no", sa.Integer),
    sa.Column("product_id", sa.String),
    sa.Column("quantity", sa.Integer),
    sa.Column("unit_price", sa.Numeric),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("product_id", sa.String, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("price", sa.Numeric),
)


class SqlStore:
    """Reads the durable record; every method returns None when there is nothing to read."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(
                self._url,
                pool_size=2,
                max_overflow=8,
                pool_pre_ping=True,
                pool_timeout=2,
                connect_args={"connect_timeout": 2},
            )
        return self._engine

    def order(self, order_id: str) -> dict[str, Any] | None:
        def read(conn: sa.Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(orders).where(orders.c.order_id == order_id)).first()
            if row is None:
                return None
            lines = conn.execute(
                sa.select(order_items)
                .where(order_items.c.order_id == order_id)
                .order_by(order_items.c.line_no)
            ).all()
            return {
                "order_id": order_id,
                "status": row.status,
                "reason": row.reason,
                "total": None if row.total_amount is None else str(row.total_amount),
                "items": [
                    {
                        "product_id": line.product_id,
                        "quantity": line.quantity,
                        "unit_price": None if line.unit_price is None else str(line.unit_price),
                    }
                    for line in lines
                ],
            }

        return self._run(read)

    def products(self, product_id: str | None = None) -> list[dict[str, Any]] | None:
        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            query = sa.text(
                "SELECT * FROM products" + (" WHERE product_id = :id" if product_id else "")
            )
            rows = conn.execute(query, {"id": product_id}).mappings().all()
            return [product_row(row) for row in rows]

        return self._run(read)

    def _run(self, read: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                return read(conn)
        except sa_exc.ProgrammingError as exc:  # table (or column) not there yet
            logger.info("postgres fallback: %s", exc.orig)
            return None
        except sa_exc.SQLAlchemyError as exc:
            logger.warning("postgres fallback unavailable: %s", exc)
            raise Unavailable("the order store is unavailable") from None


def product_row(row: Any) -> dict[str, Any]:
    active = row.get("active")
    if active is None and "discontinued" in row:
        active = not row["discontinued"]
    available = row.get("available", row.get("stock", 0))
    limit = row.get("limit_per_customer")
    return {
        "product_id": row["product_id"],
        "name": row.get("name") or "",
        "price": str(row.get("price") or "0"),
        "available": int(available or 0),
        "active": True if active is None else bool(active),
        "limit_per_customer": None if limit is None else int(limit),
    }
