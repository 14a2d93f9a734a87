"""Fakes and helpers for the ingress unit tests (imported by conftest and tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from falcon import testing

from ingress.publisher import Message, PublishError
from orderstream.core.settings import Settings

STOREFRONT = "sk-test-storefront"
ADMIN = "ak-test-admin"
FRESH_KEY = "fresh"  # post_order's default: a new Idempotency-Key for each call


@dataclass
class FakePublisher:
    """Acks everything, or fails after ``fail_after`` messages of the next publish calls."""

    sent: list[Message] = field(default_factory=list)
    fail_after: int | None = None
    is_ready: bool = True

    async def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        for i, message in enumerate(messages):
            if self.fail_after is not None and i >= self.fail_after:
                raise PublishError("fake failure", i, len(messages))
            self.sent.append(message)

    async def ready(self, timeout_s: float) -> bool:
        return self.is_ready

    async def close(self) -> None:
        pass


@dataclass
class FakeFallback:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    product_rows: list[dict[str, Any]] = field(default_factory=list)

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self.orders.get(order_id)

    def products(
        self, product_id: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]] | None:
        rows = sorted(
            (p for p in self.product_rows if product_id in (None, p["product_id"])),
            key=lambda p: p["product_id"],
        )
        return [p for p in rows if after is None or p["product_id"] > after][:limit]


@dataclass
class Harness:
    client: testing.TestClient
    redis: Any
    publisher: FakePublisher
    fallback: FakeFallback
    settings: Settings
    server: Any = None

    def post_order(self, body: Any, key: str | None = FRESH_KEY, **kw: Any) -> testing.Result:
        """POST /v1/orders as the storefront; ``key=None`` sends no Idempotency-Key."""
        headers = {"Authorization": f"Bearer {STOREFRONT}", **kw.pop("headers", {})}
        if key == FRESH_KEY:
            key = uuid.uuid4().hex
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.simulate_post("/v1/orders", json=body, headers=headers, **kw)


def order_body(*lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": "cust-1",
        "items": [{"product_id": p, "quantity": q} for p, q in lines],
        **extra,
    }


STORE = {"Authorization": f"Bearer {STOREFRONT}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


def with_key(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus a fresh Idempotency-Key, as every order POST needs."""
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}
