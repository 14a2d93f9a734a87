"""Edge validation: 400, 413, 415, 422 with RFC 9457 bodies and per-field errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ingress_fakes import STORE, Harness, order_body, with_key


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def post_raw(
    h: Harness, body: bytes, content_type: str = "application/json", **headers: str
) -> Any:
    return h.client.simulate_post(
        "/v1/orders",
        body=body,
        headers={**with_key(STORE), "Content-Type": content_type, **headers},
    )


def test_malformed_json_is_400(h: Harness) -> None:
    body = problem(post_raw(h, b'{"customer_id": '), 400)
    assert body["type"].endswith("malformed-json")


def test_empty_body_is_400(h: Harness) -> None:
    problem(post_raw(h, b""), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_not_json_is_415(h: Harness, content_type: str) -> None:
    problem(post_raw(h, json.dumps(order_body(("a", 1))).encode(), content_type), 415)


def test_json_with_charset_is_accepted(h: Harness) -> None:
    r = post_raw(h, json.dumps(order_body(("a", 1))).encode(), "application/json; charset=utf-8")
    assert r.status_code == 202


def test_declared_length_over_the_limit_is_413(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_body_bytes=100)
    problem(post_raw(h, b"{" + b" " * 200 + b"}"), 413)


def test_a_body_longer_than_declared_limit_is_413_by_bounded_read(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_body_bytes=100)
    # no Content-Length: the server reads at most max_body_bytes + 1
    r = h.client.simulate_request(
        "POST",
        "/v1/orders",
        headers={**with_key(STORE), "Content-Type": "application/json"},
        body=b"{" + b" " * 200 + b"}",
        extras={"CONTENT_LENGTH": ""},
    )
    problem(r, 413)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order_body(("a", 1), total="9.99"), "total"),
        (
            {"customer_id": "c", "items": [{"product_id": "a", "quantity": 1, "price": "1.00"}]},
            "items[0].price",
        ),
        (order_body(("a", 0)), "items[0].quantity"),
        (order_body(("a", 101)), "items[0].quantity"),
        (order_body(("a", 1), ("a", 2)), "items[1].product_id"),
        (order_body(("bad id!", 1)), "items[0].product_id"),
        (order_body(("a" * 65, 1)), "items[0].product_id"),
        ({"customer_id": "c", "items": []}, "items"),
        (
            {"customer_id": "bad customer", "items": [{"product_id": "a", "quantity": 1}]},
            "customer_id",
        ),
        ({"items": [{"product_id": "a", "quantity": 1}]}, "customer_id"),  # required with a key
        (order_body(("a", 1), expected_total=19.99), "expected_total"),
        (order_body(("a", 1), expected_total="19,99"), "expected_total"),
        (order_body(("a", "1")), "items[0].quantity"),
        (order_body(("a", 1), shipping_address={"name": "x"}), "shipping_address.line1"),
        (
            order_body(("a", 1), payment_method={"type": "cash", "token": "t"}),
            "payment_method.type",
        ),
        ([1, 2], "body"),
    ],
)
def test_invalid_fields_are_422_with_the_field_named(h: Harness, body: Any, field: str) -> None:
    r = h.client.simulate_post("/v1/orders", json=body, headers=with_key(STORE))
    problem_body = problem(r, 422)
    assert problem_body["type"].endswith("validation")
    fields = [e["field"] for e in problem_body["errors"]]
    assert field in fields, fields
    assert h.publisher.sent == []


def test_too_many_lines_is_422(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_lines=2)
    r = h.post_order(order_body(("a", 1), ("b", 1), ("c", 1)))
    assert [e["field"] for e in problem(r, 422)["errors"]] == ["items"]


def test_all_settings_limits_are_reported_together(h: Harness) -> None:
    r = h.post_order(order_body(("a", 500), ("a", 1)))
    fields = [e["field"] for e in problem(r, 422)["errors"]]
    assert fields == ["items[0].quantity", "items[1].product_id"]


def test_optional_shipping_address_and_payment_method_are_accepted(h: Harness) -> None:
    body = order_body(
        ("a", 1),
        expected_total="10.00",
        shipping_address={
            "name": "Ada",
            "line1": "1 Main St",
            "city": "Paris",
            "postal_code": "75001",
            "country": "FR",
        },
        payment_method={"type": "card", "token": "tok_123"},
    )
    assert h.post_order(body).status_code == 202


def test_a_bad_idempotency_key_is_422(h: Harness) -> None:
    r = h.post_order(order_body(("a", 1)), key="has space")
    assert [e["field"] for e in problem(r, 422)["errors"]] == ["header:Idempotency-Key"]


def test_unknown_route_is_a_problem_404(h: Harness) -> None:
    problem(h.client.simulate_get("/v1/nothing"), 404)


def test_wrong_method_is_a_problem_405(h: Harness) -> None:
    problem(h.client.simulate_delete("/v1/orders", headers=STORE), 405)
