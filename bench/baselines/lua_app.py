"""baseline_lua: Redis Lua pre-deduction, the pending order in SQL, a queue worker completes it.

POST answers 202 ``accepted`` once the order is pre-deducted, inserted as pending and queued
(or 202 ``rejected`` at once when Redis says there is not enough stock);
``GET /v1/orders/{id}?wait=S`` long-polls with a BLPOP on the order's wake-up key.
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
    ProductResource,
    create_base_app,
    order_body,
    parse_order,
    problem,
    require_key,
)
from bench.baselines.prededuct import RedisStock
from bench.baselines.store import create_engine, create_redis

logger = logging.getLogger(__name__)

SELECT_PRICES = sa.text("SELECT product_id, price FROM products WHERE product_id = ANY(:pids)")
INSERT_PENDING = sa.text(
    "INSERT INTO orders (order_id, customer_id, status, total_amount) "
    "VALUES (:oid, :cid, 'accepted', :total)"
)
INSERT_ITEM = sa.text(
    "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
    "VALUES (:oid, :line_no, :pid, :q, :price)"
)
SELECT_ORDER = sa.text("SELECT status, reason FROM orders WHERE order_id = :oid")
MARK_FAILED = sa.text(
    "UPDATE orders SET status = 'rejected', reason = 'error', updated_at = now() "
    "WHERE order_id = :oid AND status = 'accepted'"
)

PREDEDUCT_REASONS = {0: "out_of_stock", -1: "unknown_product"}


class OrdersResource:
    def __init__(self, engine: sa.Engine, stock: RedisStock, settings: BaselineSettings) -> None:
        self._engine = engine
        self._stock = stock
        self._settings = settings

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_key(req, self._settings.storefront_key)
        order = parse_order(req.get_media())
        order_id = str(uuid.uuid4())
        result = self._stock.prededuct(order_id, order.units_by_product())
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/orders/{order_id}"
        if result != 1:
            reason = PREDEDUCT_REASONS.get(result, "out_of_stock")
            self._stock.client.set(self._stock.rejected_key(order_id), reason, ex=STATUS_TTL_S)
            resp.media = order_body(order_id, "rejected", reason)
            return
        try:
            with self._engine.begin() as conn:
                prices = {
                    r.product_id: r.price
                    for r in conn.execute(SELECT_PRICES, {"pids": [p for p, _ in order.lines]})
                }
                total = sum((Decimal(prices[pid]) * q for pid, q in order.lines), Decimal(0))
                conn.execute(
                    INSERT_PENDING, {"oid": order_id, "cid": order.customer_id, "total": total}
                )
                conn.execute(
                    INSERT_ITEM,
                    [
                        {"oid": order_id, "line_no": n, "pid": pid, "q": q, "price": prices[pid]}
                        for n, (pid, q) in enumerate(order.lines, start=1)
                    ],
                )
            self._stock.client.rpush(self._stock.queue_key, order_id)
        except (sa.exc.SQLAlchemyError, redis.RedisError, KeyError) as exc:
            logger.warning("order %s not taken, giving its units back: %s", order_id, exc)
            self._stock.release(order_id)
            with self._engine.begin() as conn:
                conn.execute(MARK_FAILED, {"oid": order_id})
            raise problem(
                falcon.HTTP_503, "try again", "order could not be queued", {"Retry-After": "1"}
            ) from exc
        resp.media = order_body(order_id, "accepted", None)

    def _read(self, order_id: str) -> tuple[str, str | None] | None:
        with self._engine.connect() as conn:
            row = conn.execute(SELECT_ORDER, {"oid": order_id}).first()
        if row is not None:
            return row.status, row.reason
        reason = self._stock.client.get(self._stock.rejected_key(order_id))
        return None if reason is None else ("rejected", str(reason))

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        require_key(req, self._settings.storefront_key)
        wait = min(max(req.get_param_as_float("wait") or 0.0, 0.0), self._settings.max_wait_s)
        found = self._read(order_id)
        if found is not None and found[0] == "accepted" and wait > 0:
            self._stock.client.blpop([self._stock.done_key(order_id)], timeout=wait)
            found = self._read(order_id)
        if found is None:
            raise falcon.HTTPNotFound()
        resp.media = order_body(order_id, *found)


def create_app(settings: BaselineSettings, engine: sa.Engine, client: redis.Redis) -> falcon.App:
    stock = RedisStock(client, settings.redis_prefix)
    orders = OrdersResource(engine, stock, settings)
    app = create_base_app()
    app.add_route("/v1/orders", orders)
    app.add_route("/v1/orders/{order_id}", orders, suffix="one")
    app.add_route(
        "/v1/products/{product_id}", ProductResource(engine, settings.admin_key, stock.set_stock)
    )
    return app


def get_app() -> falcon.App:
    """gunicorn entry: ``gunicorn 'bench.baselines.lua_app:get_app()'``."""
    settings = BaselineSettings.from_env()
    return create_app(settings, create_engine(settings), create_redis(settings))
