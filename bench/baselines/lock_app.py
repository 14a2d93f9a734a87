"""baseline_lock: per-product Redis lock, then one SQL transaction decides and records the order.

The answer is final in the POST response (``shipped`` or ``rejected``); a lock that cannot be
taken after the retries is a 503 "busy, try again".
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import falcon
import redis
import sqlalchemy as sa

from bench.baselines.config import BaselineSettings
from bench.baselines.http import (
    STATUS_TTL_S,
    OrderRequest,
    ProductResource,
    create_base_app,
    order_body,
    parse_order,
    problem,
    require_key,
)
from bench.baselines.locks import LockBusy, ProductLocks
from bench.baselines.store import create_engine, create_redis

logger = logging.getLogger(__name__)

SELECT_STOCK = sa.text(
    "SELECT product_id, price, stock FROM products WHERE product_id = ANY(:pids)"
)
DECREMENT = sa.text(
    "UPDATE products SET stock = stock - :q, updated_at = now() WHERE product_id = :pid"
)
INSERT_ORDER = sa.text(
    "INSERT INTO orders (order_id, customer_id, status, total_amount) "
    "VALUES (:oid, :cid, 'shipped', :total)"
)
INSERT_ITEM = sa.text(
    "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
    "VALUES (:oid, :line_no, :pid, :q, :price)"
)
SELECT_ORDER = sa.text("SELECT status, reason FROM orders WHERE order_id = :oid")


def decide_and_record(conn: sa.Connection, order_id: str, order: OrderRequest) -> str | None:
    """Check and decrement stock, insert the order; return a reject reason or None when shipped."""
    wanted = order.units_by_product()
    rows = {r.product_id: r for r in conn.execute(SELECT_STOCK, {"pids": list(wanted)})}
    if len(rows) < len(wanted):
        return "unknown_product"
    if any(rows[pid].stock < units for pid, units in wanted.items()):
        return "out_of_stock"
    for pid, units in wanted.items():
        conn.execute(DECREMENT, {"q": units, "pid": pid})
    total = sum((Decimal(rows[pid].price) * q for pid, q in order.lines), Decimal(0))
    conn.execute(INSERT_ORDER, {"oid": order_id, "cid": order.customer_id, "total": total})
    conn.execute(
        INSERT_ITEM,
        [
            {"oid": order_id, "line_no": n, "pid": pid, "q": q, "price": rows[pid].price}
            for n, (pid, q) in enumerate(order.lines, start=1)
        ],
    )
    return None


class OrdersResource:
    def __init__(
        self,
        engine: sa.Engine,
        client: redis.Redis,
        locks: ProductLocks,
        settings: BaselineSettings,
    ):
        self._engine = engine
        self._redis = client
        self._locks = locks
        self._settings = settings

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_key(req, self._settings.storefront_key)
        order = parse_order(req.get_media())
        order_id = str(uuid.uuid4())
        try:
            with self._locks.hold([pid for pid, _ in order.lines]):
                with self._engine.connect() as conn:
                    reason = decide_and_record(conn, order_id, order)
                    if reason is None:
                        conn.commit()
                    else:
                        conn.rollback()
        except LockBusy as exc:
            raise problem(
                falcon.HTTP_503, "busy, try again", f"lock on {exc}", {"Retry-After": "1"}
            ) from exc
        if reason is not None:
            self._redis.set(self.status_key(order_id), reason, ex=STATUS_TTL_S)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/orders/{order_id}"
        resp.media = order_body(order_id, "rejected" if reason else "shipped", reason)

    def status_key(self, order_id: str) -> str:
        return f"{self._settings.redis_prefix}rejected:{order_id}"

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        require_key(req, self._settings.storefront_key)
        with self._engine.connect() as conn:
            row = conn.execute(SELECT_ORDER, {"oid": order_id}).first()
        if row is not None:
            resp.media = order_body(order_id, row.status, row.reason)
            return
        reason = self._redis.get(self.status_key(order_id))
        if reason is None:
            raise falcon.HTTPNotFound()
        resp.media = order_body(order_id, "rejected", str(reason))


def create_app(settings: BaselineSettings, engine: sa.Engine, client: redis.Redis) -> falcon.App:
    locks = ProductLocks(
        client,
        settings.redis_prefix,
        settings.lock_ttl_ms,
        settings.lock_attempts,
        (settings.backoff_min_s, settings.backoff_max_s),
    )
    orders = OrdersResource(engine, client, locks, settings)
    app = create_base_app()
    app.add_route("/v1/orders", orders)
    app.add_route("/v1/orders/{order_id}", orders, suffix="one")
    app.add_route("/v1/products/{product_id}", ProductResource(engine, settings.admin_key))
    return app


def get_app() -> falcon.App:
    """gunicorn entry: ``gunicorn 'bench.baselines.lock_app:get_app()'``."""
    settings = BaselineSettings.from_env()
    return create_app(settings, create_engine(settings), create_redis(settings))
