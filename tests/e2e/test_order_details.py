"""Order details end to end: a warehouse consuming ``orders.shipped`` from Kafka finds, for
every shipped order placed with them, its shipping address and payment reference, and
PostgreSQL holds them; a product's description reaches the API and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer

from orderstream.client import OrderstreamClient
from schemas import topics
from schemas.common import SCHEMA_VERSION
from schemas.export import COMMITTED_DIR, file_name
from tests.e2e.records import consumer_at_end

OPTIONAL_ADDRESS_FIELDS = ("line2", "region", "phone")
SHIPPED_SCHEMA = json.loads((COMMITTED_DIR / file_name(topics.ORDERS_SHIPPED)).read_text())


HEX_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def address(i: int) -> dict[str, Any]:
    full = {
        "name": f"Recipient {i}",
        "line1": f"{i} Rue de Rivoli",
        "line2": f"Bâtiment {i}",
        "city": "Paris",
        "region": "Île-de-France",
        "postal_code": f"750{i % 20 + 1:02d}",
        "country": "FR",
        "phone": f"+33 1 23 45 67 {i % 100:02d}",
    }
    if i % 2:  # every other address without its optional fields
        return {k: v for k, v in full.items() if k not in OPTIONAL_ADDRESS_FIELDS}
    return full


def payment(i: int) -> dict[str, str]:
    # a fresh token per run, with no long digit run that the ingress would take for a card
    token = f"tok_{i}_{uuid.uuid4().hex.translate(HEX_LETTERS)}"
    return {"type": ("card", "paypal", "invoice")[i % 3], "token": token}


def as_shipped(sent: dict[str, Any]) -> dict[str, Any]:
    """An address as the event carries it: every optional field present, null when unsent."""
    return {**dict.fromkeys(OPTIONAL_ADDRESS_FIELDS), **sent}


@pytest.fixture
def warehouse(stack) -> Iterator[KafkaConsumer]:
    """A downstream consumer group on ``orders.shipped``, positioned at the topic's end."""
    consumer = consumer_at_end(
        stack.settings.topics(topics.ORDERS_SHIPPED), stack.settings.kafka_bootstrap, "warehouse"
    )
    yield consumer
    consumer.close()


def read_shipped(
    consumer: KafkaConsumer, order_ids: set[str], timeout_s: float = 90.0
) -> dict[str, dict[str, Any]]:
    """The shipped events of ``order_ids``, deduplicated by ``event_id`` as a consumer must."""
    found: dict[str, dict[str, Any]] = {}
    seen_events: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while not order_ids <= found.keys() and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                event = json.loads(record.value)
                if event["event_id"] in seen_events:
                    continue
                seen_events.add(event["event_id"])
                assert record.key.decode() == event["order_id"]
                if event["order_id"] in order_ids:
                    assert event["order_id"] not in found, "two shipped events for one order"
                    found[event["order_id"]] = event
    return found


def test_a_warehouse_finds_the_address_and_payment_of_every_shipped_order(
    api: OrderstreamClient, pg: sa.Engine, stocked, warehouse: KafkaConsumer
) -> None:
    products = [stocked(f"detail-{n}", 100) for n in range(3)]
    sold_out = stocked("detail-gone", 1)
    orders: list[tuple[list[tuple[str, int]], dict[str, Any] | None, dict[str, str] | None]] = []
    for i in range(12):
        lines = [(products[0], 1)] if i % 3 == 0 else [(p, 1 + n) for n, p in enumerate(products)]
        orders.append((lines, address(i), payment(i)))
    orders.append(([(products[1], 1)], None, None))  # an order placed without details
    orders.append(([(products[2], 1), (products[0], 1)], None, None))

    def place(order: tuple[Any, Any, Any]) -> str:
        lines, ship_to, paid_by = order
        return api.post_order(
            "warehouse-test", lines, shipping_address=ship_to, payment_method=paid_by
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        order_ids = list(pool.map(place, orders))
        finals = list(pool.map(api.wait_terminal, order_ids))
    assert [f["status"] for f in finals] == ["shipped"] * len(orders)
    # one that is not shipped: no event, whatever its details
    api.buy("warehouse-test", [(sold_out, 1)])
    unshipped = api.place(
        "warehouse-test", [(sold_out, 1)], shipping_address=address(99), payment_method=payment(99)
    )

    shipped = read_shipped(warehouse, set(order_ids))

    assert set(shipped) == set(order_ids)
    for order_id, (_, ship_to, paid_by) in zip(order_ids, orders, strict=True):
        event = shipped[order_id]
        jsonschema.validate(event, SHIPPED_SCHEMA)
        assert event["schema_version"] == SCHEMA_VERSION
        assert event["shipping_address"] == (None if ship_to is None else as_shipped(ship_to))
        assert event["payment_method"] == paid_by
    if unshipped.order_id is not None:
        assert api.wait_terminal(unshipped.order_id)["status"] == "rejected"
        assert unshipped.order_id not in read_shipped(warehouse, {unshipped.order_id}, 3.0)

    with pg.connect() as conn:
        rows = {
            order_id: (ship_to, paid_by)
            for order_id, ship_to, paid_by in conn.execute(
                sa.text(
                    "SELECT order_id, shipping_address, payment_method FROM orders"
                    " WHERE order_id = ANY(:ids) AND status = 'shipped'"
                ),
                {"ids": order_ids},
            )
        }
    assert set(rows) == set(order_ids)
    for order_id, (_, ship_to, paid_by) in zip(order_ids, orders, strict=True):
        assert rows[order_id] == (None if ship_to is None else as_shipped(ship_to), paid_by)


def test_a_product_description_reaches_the_api_and_postgresql(
    api: OrderstreamClient, pg: sa.Engine, sku
) -> None:
    product_id = sku("described")
    text = "Stoneware mug, 350 ml.\nDishwasher safe."
    api.put_product(product_id, name="Mug", price="9.50", stock=3, description=text)
    shown = api.wait_product(product_id, lambda p: p["description"] == text)
    assert shown is not None and shown["description"] == text
    page = api.products(limit=1000, after=product_id[:-1])
    assert any(p["product_id"] == product_id and p["description"] == text for p in page["items"])

    def stored() -> Any:
        with pg.connect() as conn:
            return conn.execute(
                sa.text("SELECT description FROM products WHERE product_id = :p"),
                {"p": product_id},
            ).scalar()

    deadline = time.monotonic() + 30
    while stored() != text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored() == text

    api.put_product(product_id, name="Mug", price="9.50")  # an upsert without one clears it
    cleared = api.wait_product(product_id, lambda p: p["description"] is None)
    assert cleared is not None and cleared["description"] is None
