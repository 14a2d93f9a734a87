"""End-to-end fixtures: the running pipeline through HTTP, PostgreSQL and Kafka only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from orderstream.client import OrderstreamClient
from orderstream.reconcile import Reconciler


@pytest.fixture(scope="session")
def api(stack) -> Iterator[OrderstreamClient]:
    settings = stack.settings
    with OrderstreamClient(
        settings.ingress_url, settings.storefront_key, settings.admin_key
    ) as client:
        yield client


@pytest.fixture(scope="session")
def pg(stack) -> Iterator[sa.Engine]:
    engine = sa.create_engine(stack.settings.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def sku() -> Callable[[str], str]:
    """Unique product ids per test, so tests share the stack without sharing stock."""
    run = uuid.uuid4().hex[:8]
    return lambda name: f"E2E-{run}-{name}"


@pytest.fixture
def stocked(api: OrderstreamClient, sku: Callable[[str], str]) -> Callable[..., str]:
    """Create a product with stock and wait until the read side shows it."""

    def make(name: str, stock: int, price: str = "10.00", limit: int | None = None) -> str:
        product_id = sku(name)
        api.put_product(product_id, name=name, price=price, stock=stock, limit_per_customer=limit)
        shown = api.wait_product(product_id, lambda p: p["available"] == stock)
        assert shown is not None and shown["available"] == stock, shown
        return product_id

    return make


@pytest.fixture
def reconcile(stack) -> Callable[[list[str]], list[str]]:
    """Check DESIGN.md's invariants 1-5 for the given products (empty list = clean)."""

    def check(product_ids: list[str]) -> list[str]:
        with Reconciler(stack.settings) as reconciler:
            return [str(v) for v in reconciler.check(product_ids=product_ids)]

    return check
