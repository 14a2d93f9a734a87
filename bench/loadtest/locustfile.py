"""The buyer of ``make loadtest``, for Locust: look at a product, buy it, check the order.

Each simulated buyer, between think times of ``LOADTEST_THINK`` seconds (1-2 by default):
``GET /v1/products/{id}``, ``POST /v1/orders`` (one line of one unit, a fresh
Idempotency-Key, the storefront key and the buyer's own customer id), then
``GET /v1/orders/{id}?wait=S``, which answers as soon as the order moves on from
``accepted``. A refusal at the door (409, sold out) is an answer, not a failure; any other
status (a 429 or a 503 included) fails. Settings come from the environment that
``python -m bench.loadtest`` sets: ``LOADTEST_PRODUCTS`` (comma-separated ids),
``LOADTEST_STOREFRONT_KEY``, ``LOADTEST_WAIT_S`` and ``LOADTEST_THINK`` (``low,high``).
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, between, task

PRODUCTS = [p for p in os.environ.get("LOADTEST_PRODUCTS", "").split(",") if p]
STOREFRONT_KEY = os.environ.get("LOADTEST_STOREFRONT_KEY", "")
WAIT_S = float(os.environ.get("LOADTEST_WAIT_S", "5"))
THINK_LOW, THINK_HIGH = (float(x) for x in os.environ.get("LOADTEST_THINK", "1,2").split(","))
ANSWERS = (202, 409)  # accepted, or refused at the door with a reason


class Buyer(FastHttpUser):
    wait_time = between(THINK_LOW, THINK_HIGH)

    def on_start(self) -> None:
        self.customer_id = f"lt-{uuid.uuid4().hex[:12]}"
        self.auth = {"Authorization": f"Bearer {STOREFRONT_KEY}"}

    @task
    def buy(self) -> None:
        product = random.choice(PRODUCTS)
        self.client.get(f"/v1/products/{product}", name="GET /v1/products/{id}")
        body = {"customer_id": self.customer_id, "items": [{"product_id": product, "quantity": 1}]}
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/v1/orders", json=body, headers=headers, name="POST /v1/orders", catch_response=True
        ) as posted:
            if posted.status_code not in ANSWERS:
                posted.failure(f"HTTP {posted.status_code}")
                return
            posted.success()
            if posted.status_code != 202:
                return
            order_id = posted.json()["order_id"]
        self.client.get(
            f"/v1/orders/{order_id}?wait={WAIT_S:g}", headers=self.auth, name="GET /v1/orders/{id}"
        )
