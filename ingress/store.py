"""The PostgreSQL fallback of the read side (SQLAlchemy Core on the sink's tables,
``orderstream.core.tables``). A missing table (migrations not run yet) reads as "not found"."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ingress.errors import Unavailable
from orderstream.core.tables import order_items, orders, products

logger = logging.getLogger(__name__)


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

    def products(
        self, product_id: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]] | None:
        """One product, or up to ``limit`` in id order after ``after`` (a page)."""

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            query = sa.select(products).order_by(products.c.product_id).limit(limit)
            if product_id is not None:
                query = query.where(products.c.product_id == product_id)
            if after is not None:
                query = query.where(products.c.product_id > after)
            return [product_row(row) for row in conn.execute(query).mappings()]

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
    """A ``products`` row as the API shows it. PostgreSQL does not hold live stock (the
    stock table does), so a product read from the fallback shows 0 available."""
    limit = row["limit_per_customer"]
    return {
        "product_id": row["product_id"],
        "name": row["name"],
        "description": row.get("description"),
        "price": str(row["price"]),
        "available": 0,
        "active": bool(row["active"]),
        "limit_per_customer": None if limit is None else int(limit),
    }
