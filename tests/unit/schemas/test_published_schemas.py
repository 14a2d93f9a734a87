"""The published contract: the committed JSON Schemas are what the code exports now, the
AsyncAPI document describes exactly the public topics with those schemas, and real events
(with and without order details) validate against the committed files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas import codec, topics
from schemas.common import SCHEMA_VERSION, Record
from schemas.export import COMMITTED_DIR, PUBLIC_RECORDS, file_name, render
from schemas.orders import (
    OrderCancelled,
    OrderCommitted,
    OrderItem,
    OrderRejected,
    OrderShipped,
    PaymentReference,
    ShippingAddress,
)

ASYNCAPI = COMMITTED_DIR.parent / "asyncapi.yaml"
ADDRESS = ShippingAddress(
    name="Ada Lovelace",
    line1="12 St James's Square",
    city="London",
    postal_code="SW1Y 4LB",
    country="GB",
    phone="+44 20 7946 0000",
)
PAYMENT = PaymentReference(type="card", token="tok_1Nf2Zq2eZvKYlo2C")
ITEMS = (OrderItem(line_no=0, product_id="SKU-1", quantity=2, unit_price=Decimal("9.99")),)


def committed(topic: str) -> dict[str, Any]:
    return json.loads((COMMITTED_DIR / file_name(topic)).read_text())


def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text())


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


@pytest.mark.parametrize("topic", list(PUBLIC_RECORDS))
def test_the_committed_schema_is_what_the_code_exports(topic: str) -> None:
    path = COMMITTED_DIR / file_name(topic)
    assert path.exists(), f"{path} missing: run `orderstream schemas export`"
    assert path.read_text() == render(topic), (
        f"{path} differs from the records in schemas/: run `orderstream schemas export`"
    )


def test_exactly_the_public_topics_are_committed() -> None:
    assert set(PUBLIC_RECORDS) == set(topics.PUBLIC_TOPICS)
    files = {p.name for p in COMMITTED_DIR.glob("*.schema.json")}
    assert files == {file_name(t) for t in topics.PUBLIC_TOPICS}


def test_the_asyncapi_document_has_one_channel_per_public_topic_with_its_schema() -> None:
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == str(SCHEMA_VERSION)
    channels = doc["channels"]
    assert sorted(c["address"] for c in channels.values()) == sorted(topics.PUBLIC_TOPICS)
    for channel in channels.values():
        topic = channel["address"]
        assert channel["bindings"]["kafka"]["topic"] == topic
        (message_ref,) = channel["messages"].values()
        message = resolve(doc, message_ref["$ref"])
        assert message["name"] == PUBLIC_RECORDS[topic].__name__
        payload = message["payload"]
        assert payload["schemaFormat"].startswith("application/schema+json")
        schema_path = (ASYNCAPI.parent / payload["schema"]["$ref"]).resolve()
        assert schema_path == (COMMITTED_DIR / file_name(topic)).resolve()
        assert json.loads(schema_path.read_text())["title"] == topic
        for trait in message.get("traits", []):
            resolve(doc, trait["$ref"])


def test_every_asyncapi_operation_receives_its_channels_message() -> None:
    doc = asyncapi()
    operations = doc["operations"]
    assert {op["channel"]["$ref"] for op in operations.values()} == {
        f"#/channels/{name}" for name in doc["channels"]
    }
    for op in operations.values():
        assert op["action"] == "receive"
        channel_ref = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/")
            resolve(doc, message["$ref"])


def events() -> list[tuple[str, object]]:
    common: dict[str, Any] = {"event_id": "e1", "order_id": "o1", "customer_id": "c1"}
    return [
        (topics.ORDERS_SHIPPED, OrderShipped(**common, items=ITEMS, total=Decimal("19.98"))),
        (
            topics.ORDERS_SHIPPED,
            OrderShipped(
                **common,
                items=ITEMS,
                total=Decimal("19.98"),
                shipping_address=ADDRESS,
                payment_method=PAYMENT,
            ),
        ),
        (
            topics.ORDERS_COMMITTED,
            OrderCommitted(
                **common,
                items=ITEMS,
                total=Decimal("19.98"),
                shipping_address=ADDRESS,
                payment_method=PAYMENT,
            ),
        ),
        (topics.ORDERS_REJECTED, OrderRejected(**common, reason="out_of_stock")),
        (topics.ORDERS_CANCELLED, OrderCancelled(**common)),
    ]


@pytest.mark.parametrize(("topic", "event"), events())
def test_events_as_encoded_validate_against_the_committed_schema(topic: str, event: object) -> None:
    value = json.loads(codec.encode(event))
    assert value["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(value, committed(topic))


def test_a_shipped_event_carries_the_order_details_by_these_names() -> None:
    value = json.loads(codec.encode(events()[1][1]))
    assert value["shipping_address"] == {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "line2": None,
        "city": "London",
        "region": None,
        "postal_code": "SW1Y 4LB",
        "country": "GB",
        "phone": "+44 20 7946 0000",
    }
    assert value["payment_method"] == {"type": "card", "token": "tok_1Nf2Zq2eZvKYlo2C"}


def test_a_version_1_event_still_decodes_and_a_version_1_reader_ignores_the_new_fields() -> None:
    """Compatibility both ways: a v1 event (no details) decodes as null details, and a
    reader built on the v1 shape (unknown fields ignored, as msgspec does) reads a v2 one."""
    old = {
        "type": "order_shipped",
        "schema_version": 1,
        "event_id": "e1",
        "order_id": "o1",
        "customer_id": "c1",
        "items": [{"line_no": 0, "product_id": "SKU-1", "quantity": 2, "unit_price": "9.99"}],
        "total": "19.98",
        "occurred_at": "2026-12-01T10:00:00+00:00",
    }
    decoded = codec.decode(json.dumps(old), OrderShipped)
    assert decoded.shipping_address is None and decoded.payment_method is None
    jsonschema.validate(old, committed(topics.ORDERS_SHIPPED))

    class ShippedV1(Record, tag="order_shipped", tag_field="type", frozen=True):
        event_id: str
        order_id: str
        customer_id: str
        total: Decimal

    new = codec.encode(events()[1][1])
    assert codec.decode(new, ShippedV1).total == Decimal("19.98")


def test_export_writes_the_committed_files(tmp_path: Path) -> None:
    from schemas.export import export

    for path in export(tmp_path):
        assert path.read_text() == (COMMITTED_DIR / path.name).read_text()
