"""The PostgreSQL fallback of the read side (SQLAlchemy Core on the sink's tables,
``orderstream.core.tables``). A missing table (migrations not run yet) reads as "not found"."""

from __future__ import annotations

import functools
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ingress.errors import Unavailable
from ingress.history import Position
from orderstream.core.tables import order_items, orders, products

logger = logging.getLogger(__name__)


def ingress_engine(database_url: str, max_overflow: int) -> sa.Engine:
    """An ingress worker's small pool: PostgreSQL is off the order path, so two connections
    and a few more on demand; a dead one is noticed, and a slow one is an error in 2 s."""
    return sa.create_engine(
        database_url,
        pool_size=2,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=2,
        connect_args={"connect_timeout": 2},
    )


class SqlStore:
    """Reads the durable record; every method returns None when there is nothing to read."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url

    @functools.cached_property
    def engine(self) -> sa.Engine:  # made at the first read: the app starts without PostgreSQL
        return ingress_engine(self._url, max_overflow=8)

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
                "customer_id": row.customer_id,
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

    def customer_orders(
        self, customer_id: str, before: Position | None, exclude: list[str], limit: int
    ) -> list[dict[str, Any]]:
        """A page of the customer's settled orders, newest first, by keyset on
        ``orders_customer_history`` (``ingress.history``)."""

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            query = (
                sa.select(orders)
                .where(orders.c.customer_id == customer_id)
                .order_by(orders.c.created_at.desc(), orders.c.order_id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(
                    sa.tuple_(orders.c.created_at, orders.c.order_id)
                    < sa.tuple_(sa.literal(before.created_at), sa.literal(before.order_id))
                )
            if exclude:
                query = query.where(orders.c.order_id.not_in(exclude))
            return _with_items(conn, conn.execute(query).mappings().all())

        return self._run(read) or []

    def orders_by_id(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            query = sa.select(orders).where(orders.c.order_id.in_(order_ids))
            return _with_items(conn, conn.execute(query).mappings().all())

        return {row["order_id"]: row for row in self._run(read) or []}

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


def _with_items(conn: sa.Connection, rows: Any) -> list[dict[str, Any]]:
    """``orders`` rows as the order view reads them, with their lines (one more query)."""
    ids = [row["order_id"] for row in rows]
    lines: dict[str, list[dict[str, Any]]] = {order_id: [] for order_id in ids}
    if ids:
        query = (
            sa.select(order_items)
            .where(order_items.c.order_id.in_(ids))
            .order_by(order_items.c.order_id, order_items.c.line_no)
        )
        for line in conn.execute(query):
            lines[line.order_id].append(
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price": str(line.unit_price),
                }
            )
    return [
        {
            "order_id": row["order_id"],
            "customer_id": row["customer_id"],
            "status": row["status"],
            "reason": row["reason"],
            "total": None if row["total_amount"] is None else str(row["total_amount"]),
            "created_at": row["created_at"],
            "items": lines[row["order_id"]],
        }
        for row in rows
    ]


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
