"""An order's shipping address and payment reference at the edge: every refusal is a 422
naming the field with nothing written to Redis or Kafka; accepted details ride on line 0."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ingress_fakes import Harness, order_body

from ingress.orderdetails import CARD_DATA, looks_like_card_number, luhn_valid
from schemas import codec
from schemas.orders import OrderLineRequested

ADDRESS: dict[str, Any] = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": "Flat 3",
    "city": "London",
    "region": "Greater London",
    "postal_code": "SW1Y 4LB",
    "country": "GB",
    "phone": "+44 20 7946 0000",
}
PAYMENT = {"type": "card", "token": "tok_1Nf2Zq2eZvKYlo2C"}
# test card numbers of the card networks (Luhn-valid, 13 to 19 digits)
CARDS = [
    "4111111111111111",
    "4222222222222",
    "378282246310005",
    "6011111111111117",
    "3530111333300000",
    "6250941006528599",
    "4000056655665556",
    "6221260000000000001",
]


def with_address(**changes: Any) -> dict[str, Any]:
    address = {**ADDRESS, **changes}
    return order_body(("a", 1), shipping_address={k: v for k, v in address.items() if v != ...})


def errors_of(r: Any) -> list[dict[str, str]]:
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json["type"].endswith(":validation")
    return r.json["errors"]


def nothing_written(h: Harness) -> bool:
    """No line published, no Idempotency-Key claimed, no order status shown."""
    keys = [k.decode() if isinstance(k, bytes) else k for k in h.redis.keys("*")]
    return h.publisher.sent == [] and not [k for k in keys if "os:idem" in k or "os:order" in k]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_address(name=...), "shipping_address.name"),
        (with_address(name=""), "shipping_address.name"),
        (with_address(name="   "), "shipping_address.name"),
        (with_address(name="x" * 201), "shipping_address.name"),
        (with_address(name="Ada\nLovelace"), "shipping_address.name"),
        (with_address(line1=...), "shipping_address.line1"),
        (with_address(line1="x" * 201), "shipping_address.line1"),
        (with_address(line1="\t"), "shipping_address.line1"),
        (with_address(line2="x" * 201), "shipping_address.line2"),
        (with_address(line2="a\x00b"), "shipping_address.line2"),
        (with_address(city=...), "shipping_address.city"),
        (with_address(city=" "), "shipping_address.city"),
        (with_address(city="x" * 201), "shipping_address.city"),
        (with_address(region="x" * 201), "shipping_address.region"),
        (with_address(postal_code=...), "shipping_address.postal_code"),
        (with_address(postal_code=""), "shipping_address.postal_code"),
        (with_address(postal_code="1" * 21), "shipping_address.postal_code"),
        (with_address(postal_code="75001!"), "shipping_address.postal_code"),
        (with_address(postal_code=" 75001"), "shipping_address.postal_code"),
        (with_address(postal_code=75001), "shipping_address.postal_code"),
        (with_address(country=...), "shipping_address.country"),
        (with_address(country="gb"), "shipping_address.country"),
        (with_address(country="GBR"), "shipping_address.country"),
        (with_address(country="UK"), "shipping_address.country"),  # reserved, not assigned
        (with_address(country="XX"), "shipping_address.country"),
        (with_address(country="ZZ"), "shipping_address.country"),
        (with_address(phone="020 7946 0000"), "shipping_address.phone"),
        (with_address(phone="+44"), "shipping_address.phone"),
        (with_address(phone="+4420794600001234"), "shipping_address.phone"),
        (with_address(phone="+44 (20) 7946"), "shipping_address.phone"),
        (with_address(phone="+0 20 7946 0000"), "shipping_address.phone"),
        (with_address(phone="+1" + "-" * 40), "shipping_address.phone"),
        (with_address(email="ada@example.org"), "shipping_address.email"),
        (order_body(("a", 1), shipping_address="12 St James's Square"), "shipping_address"),
        (order_body(("a", 1), payment_method={"token": "tok_1"}), "payment_method.type"),
        (
            order_body(("a", 1), payment_method={"type": "cash", "token": "t"}),
            "payment_method.type",
        ),
        (order_body(("a", 1), payment_method={"type": "card"}), "payment_method.token"),
        (
            order_body(("a", 1), payment_method={"type": "card", "token": ""}),
            "payment_method.token",
        ),
        (
            order_body(("a", 1), payment_method={"type": "card", "token": "t" * 257}),
            "payment_method.token",
        ),
        (
            order_body(("a", 1), payment_method={"type": "card", "token": "tok\n1"}),
            "payment_method.token",
        ),
        (
            order_body(("a", 1), payment_method={**PAYMENT, "cvc": "123"}),
            "payment_method.cvc",
        ),
    ],
)
def test_a_bad_address_or_payment_field_is_422_naming_it_and_nothing_is_written(
    h: Harness, body: dict[str, Any], field: str
) -> None:
    errors = errors_of(h.post_order(body))
    assert field in [e["field"] for e in errors], errors
    assert nothing_written(h)


@pytest.mark.parametrize(
    "token",
    [
        *CARDS,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "4111/1111/1111/1111",
        "4111  1111 1111 1111",  # two spaces
        "4111 - 1111 - 1111 - 1111",
        "tok_4111111111111111",
        "pm 4111 1111 1111 1111 exp 12/29",
        "4111 1111 1111 1111 123",  # the CVC after it
        "4111111111111111-12-29",  # the expiry after it
        "x 6221 2600 0000 0000 001",
        "ref-378282246310005-x",
    ],
)
def test_a_card_number_anywhere_in_the_payment_reference_is_refused(h: Harness, token: str) -> None:
    body = order_body(
        ("a", 1), shipping_address=ADDRESS, payment_method={"type": "card", "token": token}
    )
    errors = errors_of(h.post_order(body))
    assert errors == [{"field": "payment_method.token", "message": CARD_DATA}]
    assert "card data is not accepted" in h.post_order(body).json["detail"]
    assert nothing_written(h)


def test_every_problem_of_the_details_is_reported_together(h: Harness) -> None:
    body = order_body(
        ("a", 1),
        shipping_address={**ADDRESS, "country": "XX", "city": " "},
        payment_method={"type": "card", "token": CARDS[0]},
    )
    fields = [e["field"] for e in errors_of(h.post_order(body))]
    assert fields == ["shipping_address.city", "shipping_address.country", "payment_method.token"]


@pytest.mark.parametrize(
    "token",
    [
        "tok_1Nf2Zq2eZvKYlo2C",
        "pm_1OaBcD2eZvKYlo2CxYz",
        "PAYID-M4ABCDEF12345678",
        "4111111111111112",  # 16 digits, Luhn-invalid
        "411111111111",  # 12 digits
        "inv 2026-000042",
        "41111111111111111229",  # 20 digits: not a card number
        "4111    1111 1111 1111",  # four spaces: not one number
    ],
)
def test_provider_tokens_and_references_are_accepted(h: Harness, token: str) -> None:
    body = order_body(("a", 1), payment_method={"type": "card", "token": token})
    assert h.post_order(body).status_code == 202, token


@pytest.mark.parametrize(
    "address",
    [
        ADDRESS,
        {k: v for k, v in ADDRESS.items() if k not in ("line2", "region", "phone")},
        {**ADDRESS, "country": "FR", "postal_code": "75001", "phone": "+33123456789"},
        {**ADDRESS, "country": "NL", "postal_code": "1012 JS", "name": "Ådne Ørsted-Ñúñez"},
        {**ADDRESS, "country": "US", "postal_code": "10001-1234", "phone": "+1-212-555-0100"},
    ],
)
def test_valid_addresses_are_accepted(h: Harness, address: dict[str, Any]) -> None:
    assert h.post_order(order_body(("a", 1), shipping_address=address)).status_code == 202


def test_the_details_ride_on_line_0_only(h: Harness) -> None:
    body = order_body(
        ("a", 1), ("b", 2), ("c", 3), shipping_address=ADDRESS, payment_method=PAYMENT
    )
    assert h.post_order(body).status_code == 202
    lines = sorted(
        (codec.decode(m.value, OrderLineRequested) for m in h.publisher.sent),
        key=lambda line: line.line_no,
    )
    assert [line.line_no for line in lines] == [0, 1, 2]
    first = json.loads(codec.encode(lines[0]))
    assert first["shipping_address"] == ADDRESS
    assert first["payment_method"] == PAYMENT
    assert all(line.shipping_address is None and line.payment_method is None for line in lines[1:])
    assert len({line.order_id for line in lines}) == 1


def test_an_order_without_details_carries_null(h: Harness) -> None:
    assert h.post_order(order_body(("a", 1), ("b", 1))).status_code == 202
    for message in h.publisher.sent:
        value = json.loads(message.value)
        assert value["shipping_address"] is None and value["payment_method"] is None


def test_luhn() -> None:
    assert all(luhn_valid(card) for card in CARDS)
    assert not luhn_valid("4111111111111112")
    assert looks_like_card_number("x 4111 1111 1111 1111 y")
    assert looks_like_card_number("4111  1111 1111 1111")  # two spaces still join groups
    assert looks_like_card_number("4111 / 1111 / 1111 / 1111")
    assert not looks_like_card_number("4111    1111 1111 1111")  # four spaces do not
    assert looks_like_card_number("12 4111 1111 1111 1111")  # a group before it
    assert not looks_like_card_number("")


def test_the_openapi_document_shows_the_details_and_the_description(h: Harness) -> None:
    schemas = h.client.simulate_get("/v1/openapi.json").json["components"]["schemas"]
    order = schemas["OrderRequest"]["properties"]
    assert order["shipping_address"]["anyOf"][0]["$ref"].endswith("/ShippingAddress")
    assert order["payment_method"]["anyOf"][0]["$ref"].endswith("/PaymentMethod")
    address = schemas["ShippingAddress"]
    assert set(address["required"]) == {"name", "line1", "city", "postal_code", "country"}
    assert set(address["properties"]) == set(ADDRESS)
    countries = address["properties"]["country"]["enum"]
    assert {"FR", "GB", "US"} <= set(countries) and "UK" not in countries
    assert len(countries) == len(set(countries)) >= 249
    assert address["properties"]["phone"]["anyOf"][0]["maxLength"] == 30
    token = schemas["PaymentMethod"]["properties"]["token"]
    assert token["maxLength"] == 256 and "card" in token["description"]
    upsert = schemas["ProductUpsert"]["properties"]["description"]
    assert upsert["anyOf"][0]["maxLength"] == 2000
    assert "description" in schemas["Product"]["properties"]
