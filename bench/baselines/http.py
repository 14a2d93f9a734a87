"""What both baselines share at the HTTP edge: auth, request checks, problems, the catalog PUT.

Same shape as orderstream's contract: bearer keys, ``POST /v1/orders`` -> 202
``{order_id, status}``, ``GET /v1/orders/{id}`` -> ``{order_id, status, reason?}``,
``PUT /v1/products/{id}`` (admin) ``{name, price, stock}``; problems as
``application/problem+json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import falcon
import sqlalchemy as sa

PRODUCT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_LINES = 20
MAX_QUANTITY = 100
STATUS_TTL_S = 3600


@dataclass(frozen=True)
class OrderRequest:
    customer_id: str
    lines: tuple[tuple[str, int], ...]

    def units_by_product(self) -> dict[str, int]:
        units: dict[str, int] = {}
        for product_id, quantity in self.lines:
            units[product_id] = units.get(product_id, 0) + quantity
        return dict(sorted(units.items()))


def problem(
    status: str, title: str, detail: str = "", headers: dict[str, str] | None = None
) -> falcon.HTTPError:
    return falcon.HTTPError(status, title=title, description=detail or None, headers=headers)


def require_key(req: falcon.Request, key: str) -> None:
    if req.get_header("Authorization") != f"Bearer {key}":
        raise falcon.HTTPUnauthorized(title="bad or missing credentials")


def parse_order(body: Any) -> OrderRequest:
    if not isinstance(body, dict):
        raise falcon.HTTPUnprocessableEntity(title="body must be an object")
    customer_id = body.get("customer_id")
    items = body.get("items")
    if not isinstance(customer_id, str) or not customer_id:
        raise falcon.HTTPUnprocessableEntity(title="invalid customer_id")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_LINES:
        raise falcon.HTTPUnprocessableEntity(title="items must hold 1..20 lines")
    lines: list[tuple[str, int]] = []
    for item in items:
        product_id = item.get("product_id") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if not isinstance(product_id, str) or not PRODUCT_ID.match(product_id):
            raise falcon.HTTPUnprocessableEntity(title="invalid product_id")
        if (
            not isinstance(quantity, int)
            or isinstance(quantity, bool)
            or not 1 <= quantity <= MAX_QUANTITY
        ):
            raise falcon.HTTPUnprocessableEntity(title="invalid quantity")
        lines.append((product_id, quantity))
    return OrderRequest(customer_id, tuple(lines))


def parse_product(body: Any) -> tuple[str, Decimal, int]:
    if not isinstance(body, dict):
        raise falcon.HTTPUnprocessableEntity(title="body must be an object")
    try:
        price = Decimal(str(body["price"]))
        stock = int(body.get("stock", 0))
        name = str(body["name"])
    except (KeyError, InvalidOperation, ValueError, TypeError) as exc:
        raise falcon.HTTPUnprocessableEntity(title="invalid product", description=str(exc)) from exc
    if price < 0 or stock < 0:
        raise falcon.HTTPUnprocessableEntity(title="price and stock must not be negative")
    return name, price, stock


UPSERT_PRODUCT = sa.text(
    "INSERT INTO products (product_id, name, price, stock) VALUES (:pid, :name, :price, :stock) "
    "ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, price = EXCLUDED.price, "
    "stock = EXCLUDED.stock, updated_at = now()"
)


class ProductResource:
    """``PUT /v1/products/{id}``: upsert the catalog row; ``after_upsert`` mirrors it elsewhere."""

    def __init__(
        self,
        engine: sa.Engine,
        admin_key: str,
        after_upsert: Callable[[str, int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._admin_key = admin_key
        self._after_upsert = after_upsert

    def on_put(self, req: falcon.Request, resp: falcon.Response, product_id: str) -> None:
        require_key(req, self._admin_key)
        if not PRODUCT_ID.match(product_id):
            raise falcon.HTTPNotFound()
        name, price, stock = parse_product(req.get_media())
        with self._engine.begin() as conn:
            conn.execute(
                UPSERT_PRODUCT, {"pid": product_id, "name": name, "price": price, "stock": stock}
            )
        if self._after_upsert is not None:
            self._after_upsert(product_id, stock)
        resp.status = falcon.HTTP_202
        resp.media = {"product_id": product_id, "name": name, "price": str(price), "stock": stock}


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def order_body(order_id: str, status: str, reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"order_id": order_id, "status": status}
    if reason:
        body["reason"] = reason
    return body


def create_base_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/healthz", HealthResource())
    return app
