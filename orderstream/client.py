"""A small typed client for the orderstream HTTP API (used by the demo and the e2e tests)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from schemas.orders import REFUSED_HTTP_STATUS, TERMINAL_STATUSES, refusal_reason


@dataclass
class ApiError(Exception):
    status: int
    body: Any

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.body}"


@dataclass(frozen=True)
class Placement:
    """A POSTed order: accepted (``order_id``), or refused at the door (``refusal``: the 409
    problem body, with ``reason``, ``line_no``, ``product_id``, ``available``)."""

    order_id: str | None
    refusal: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.order_id is not None


class OrderstreamClient:
    def __init__(self, base_url: str, storefront_key: str, admin_key: str, timeout: float = 30.0):
        # Shared by threads (the e2e tests buy from 32). Keep-alive is not capped below the
        # pool: httpcore 1.0.9 closes an idle connection whenever the pool holds more than
        # max_keepalive_connections (default 20) connections, and "idle" includes one just
        # handed to a thread that has not sent on it yet, which then reads a closed socket
        # (httpx.ReadError: [Errno 9] Bad file descriptor, seen once in CI).
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )
        self._storefront = {"Authorization": f"Bearer {storefront_key}"}
        self._admin = {"Authorization": f"Bearer {admin_key}"}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrderstreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- admin -----------------------------------------------------------------------
    def put_product(
        self,
        product_id: str,
        *,
        name: str,
        price: str,
        stock: int | None = None,
        limit_per_customer: int | None = None,
        description: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"name": name, "price": price}
        if description is not None:
            body["description"] = description
        if stock is not None:
            body["stock"] = stock
        if limit_per_customer is not None:
            body["limit_per_customer"] = limit_per_customer
        self._expect(
            self._http.put(f"/v1/products/{product_id}", json=body, headers=self._admin), 202
        )

    def restock(self, product_id: str, quantity: int) -> None:
        response = self._http.post(
            f"/v1/products/{product_id}/restock", json={"quantity": quantity}, headers=self._admin
        )
        self._expect(response, 202)

    def discontinue(self, product_id: str) -> None:
        self._expect(self._http.delete(f"/v1/products/{product_id}", headers=self._admin), 202)

    # --- reads -----------------------------------------------------------------------
    def product(self, product_id: str) -> dict[str, Any] | None:
        response = self._http.get(f"/v1/products/{product_id}")
        if response.status_code == 404:
            return None
        return self._expect(response, 200)

    def products(self, limit: int = 100, after: str | None = None) -> dict[str, Any]:
        """One page of the product list: ``{items, next}`` (``next``: the next page's after)."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._expect(self._http.get("/v1/products", params=params), 200)

    def wait_product(
        self, product_id: str, predicate: Any, timeout: float = 30.0
    ) -> dict[str, Any] | None:
        """Poll a product until ``predicate(product)`` holds or the timeout passes."""
        deadline = time.monotonic() + timeout
        product = self.product(product_id)
        while not (product is not None and predicate(product)) and time.monotonic() < deadline:
            time.sleep(0.1)
            product = self.product(product_id)
        return product

    def order(self, order_id: str, wait: float = 0) -> dict[str, Any] | None:
        params = {"wait": wait} if wait else None
        response = self._http.get(f"/v1/orders/{order_id}", params=params, headers=self._storefront)
        if response.status_code == 404:
            return None
        return self._expect(response, 200)

    def wait_terminal(self, order_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Long-poll an order until it reaches shipped, rejected or cancelled."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            order = self.order(order_id, wait=max(0.0, min(10.0, remaining)))
            if order is not None and order["status"] in TERMINAL_STATUSES:
                return order
            if remaining <= 0:
                raise TimeoutError(f"order {order_id} not terminal after {timeout}s: {order}")

    # --- orders ----------------------------------------------------------------------
    def post_order_response(
        self,
        customer_id: str,
        items: Iterable[tuple[str, int]] | Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        expected_total: str | None = None,
        prefer_wait: float | None = None,
        shipping_address: Mapping[str, Any] | None = None,
        payment_method: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """POST an order; ``prefer_wait=S`` asks for the final answer within S seconds
        (``Prefer: wait=S``: 201 with the order when it came, else 202).
        ``shipping_address`` ({name, line1, line2?, city, region?, postal_code, country,
        phone?}) and ``payment_method`` ({type, token}) are sent when given."""
        body: dict[str, Any] = {
            "customer_id": customer_id,
            "items": [
                dict(item)
                if isinstance(item, Mapping)
                else {"product_id": item[0], "quantity": item[1]}
                for item in items
            ],
        }
        if expected_total is not None:
            body["expected_total"] = expected_total
        if shipping_address is not None:
            body["shipping_address"] = dict(shipping_address)
        if payment_method is not None:
            body["payment_method"] = dict(payment_method)
        headers = dict(self._storefront)
        headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        if prefer_wait is not None:
            headers["Prefer"] = f"wait={prefer_wait:g}"
        return self._http.post("/v1/orders", json=body, headers=headers)

    def post_order(self, customer_id: str, items: Any, **kwargs: Any) -> str:
        body = self._expect(self.post_order_response(customer_id, items, **kwargs), 202)
        return str(body["order_id"])

    def place(self, customer_id: str, items: Any, **kwargs: Any) -> Placement:
        """POST an order: accepted, or refused by the sold-out gate; anything else raises."""
        response = self.post_order_response(customer_id, items, **kwargs)
        if response.status_code == REFUSED_HTTP_STATUS:
            body = response.json()
            if refusal_reason(response.status_code, body) is not None:
                return Placement(None, body)
        return Placement(str(self._expect(response, 202)["order_id"]))

    def final(self, placement: Placement, timeout: float = 60.0) -> dict[str, Any]:
        """The order's final answer: its terminal body, or for an order refused at the door
        ``{"status": "rejected", "reason": ..., "refused": True}``."""
        if placement.order_id is None:
            assert placement.refusal is not None
            return {"status": "rejected", "reason": placement.refusal["reason"], "refused": True}
        return self.wait_terminal(placement.order_id, timeout)

    def buy(self, customer_id: str, items: Any, **kwargs: Any) -> dict[str, Any]:
        """Place an order and follow it to its final answer (see ``final``)."""
        return self.final(self.place(customer_id, items, **kwargs))

    def cancel(self, order_id: str) -> httpx.Response:
        return self._http.post(f"/v1/orders/{order_id}/cancel", headers=self._storefront)

    @staticmethod
    def _expect(response: httpx.Response, status: int) -> Any:
        if response.status_code != status:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None
