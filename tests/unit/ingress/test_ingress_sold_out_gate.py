"""The sold-out gate: orders the read model shows cannot be filled are refused at the door.

A refusal is a 409 problem naming the line and the reason, and leaves nothing behind: no
message, no read-model order, no Idempotency-Key claim. The gate only refuses what the read
model knows cannot be filled, and lets everything through while an admin command is pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ingress_fakes import ADMIN, Harness, order_body

from orderstream.core.readmodel import Keys, product_fields


def show(
    h: Harness, product_id: str, available: int, active: bool = True, limit: int | None = None
) -> None:
    """What the stock agent writes to the read model for a product."""
    fields = product_fields(
        name=product_id, price="1.00", available=available, active=active, limit_per_customer=limit
    )
    h.redis.hset(Keys().product(product_id), mapping=fields)


def assert_nothing_left(h: Harness) -> None:
    assert h.publisher.sent == []
    assert h.redis.keys("os:order:*") == []
    assert h.redis.keys("os:idem:*") == []


def test_a_sold_out_product_is_refused_with_409_and_nothing_is_accepted(h: Harness) -> None:
    show(h, "sku-a", 0)

    r = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json == {
        "type": "urn:orderstream:problem:out-of-stock",
        "title": "Out of stock",
        "status": 409,
        "detail": "line 0: product sku-a: 0 available, 1 asked; nothing was accepted",
        "reason": "out_of_stock",
        "line_no": 0,
        "product_id": "sku-a",
        "quantity": 1,
        "available": 0,
    }
    assert_nothing_left(h)


def test_fewer_units_than_asked_is_refused_and_enough_is_accepted(h: Harness) -> None:
    show(h, "sku-a", 2)

    assert h.post_order(order_body(("sku-a", 3))).json["available"] == 2
    assert_nothing_left(h)
    assert h.post_order(order_body(("sku-a", 2))).status_code == 202
    assert len(h.publisher.sent) == 1


def test_a_discontinued_product_is_refused(h: Harness) -> None:
    show(h, "sku-a", 5, active=False)

    r = h.post_order(order_body(("sku-a", 1)))

    assert r.status_code == 409
    assert r.json["type"] == "urn:orderstream:problem:discontinued"
    assert (r.json["reason"], r.json["product_id"]) == ("discontinued", "sku-a")
    assert_nothing_left(h)


def test_a_line_over_the_per_customer_limit_is_refused_and_one_within_it_passes(
    h: Harness,
) -> None:
    show(h, "sku-a", 10, limit=2)

    r = h.post_order(order_body(("sku-a", 3)))

    assert r.status_code == 409
    assert r.json == {
        "type": "urn:orderstream:problem:limit-exceeded",
        "title": "Purchase limit exceeded",
        "status": 409,
        "detail": "line 0: product sku-a: at most 2 per customer, 3 asked; nothing was accepted",
        "reason": "limit_exceeded",
        "line_no": 0,
        "product_id": "sku-a",
        "quantity": 3,
        "available": 10,
        "limit": 2,
    }
    assert_nothing_left(h)
    # within the limit it passes: what the customer already holds is the stock agent's call
    assert h.post_order(order_body(("sku-a", 2))).status_code == 202


def test_reasons_come_in_the_stock_agents_order(h: Harness) -> None:
    show(h, "gone", 0, active=False, limit=1)
    show(h, "capped", 0, limit=1)

    assert h.post_order(order_body(("gone", 2))).json["reason"] == "discontinued"
    assert h.post_order(order_body(("capped", 2))).json["reason"] == "limit_exceeded"
    assert h.post_order(order_body(("capped", 1))).json["reason"] == "out_of_stock"
    assert_nothing_left(h)


def test_a_multi_line_order_is_refused_whole_by_its_first_unfillable_line(h: Harness) -> None:
    show(h, "sku-a", 10)
    show(h, "sku-b", 0)
    show(h, "sku-c", 0, active=False)

    r = h.post_order(order_body(("sku-a", 1), ("sku-b", 1), ("sku-c", 1)))

    assert r.status_code == 409
    assert (r.json["line_no"], r.json["reason"]) == (1, "out_of_stock")
    assert_nothing_left(h)


def test_a_product_the_read_model_does_not_know_passes_to_the_stock_agent(h: Harness) -> None:
    # e.g. created a moment ago: the stock agent decides (unknown_product or a reservation)
    assert h.post_order(order_body(("sku-new", 1))).status_code == 202
    assert len(h.publisher.sent) == 1


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/v1/products/sku-a/restock", "simulate_post", {"quantity": 5}),
        ("/v1/products/sku-a", "simulate_put", {"name": "A", "price": "1.00", "stock": 5}),
        ("/v1/products/sku-a", "simulate_delete", None),
    ],
)
def test_an_admin_command_opens_the_gate_until_the_stock_agent_has_applied_it(
    h: Harness, path: str, method: str, body: dict[str, Any] | None
) -> None:
    show(h, "sku-a", 0)
    call: Callable[..., Any] = getattr(h.client, method)
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {ADMIN}"}}
    if body is not None:
        kwargs["json"] = body
    assert call(path, **kwargs).status_code == 202

    # the read model still says 0, but the command is on its way: the stock agent decides
    assert h.post_order(order_body(("sku-a", 1))).status_code == 202
    ttl_ms = h.redis.pttl(Keys().product_pending("sku-a"))
    assert 0 < ttl_ms <= h.settings.sold_out_gate_pause_s * 1000
    # once the pause is over the read model is trusted again
    h.redis.delete(Keys().product_pending("sku-a"))
    assert h.post_order(order_body(("sku-a", 1))).status_code == 409


def test_an_idempotent_retry_of_an_accepted_order_replays_even_once_sold_out(h: Harness) -> None:
    show(h, "sku-a", 1)
    first = h.post_order(order_body(("sku-a", 1)), key="k-1")
    show(h, "sku-a", 0)  # the stock agent reserved the last unit for it

    again = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json["order_id"] == first.json["order_id"]
    assert len(h.publisher.sent) == 1


def test_a_refused_key_can_be_used_again_once_stock_is_back(h: Harness) -> None:
    show(h, "sku-a", 0)
    assert h.post_order(order_body(("sku-a", 1)), key="k-1").status_code == 409
    show(h, "sku-a", 3)
    assert h.post_order(order_body(("sku-a", 1)), key="k-1").status_code == 202


def test_the_gate_can_be_turned_off(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(sold_out_gate=False)
    show(h, "sku-a", 0, active=False)
    assert h.post_order(order_body(("sku-a", 1))).status_code == 202
    assert len(h.publisher.sent) == 1
    # and admin commands write no pending set nobody would read (they need no Redis then)
    restock = h.client.simulate_post(
        "/v1/products/sku-a/restock",
        json={"quantity": 5},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert restock.status_code == 202
    assert h.redis.exists(Keys().product_pending("sku-a")) == 0


def test_refusals_are_counted_by_reason(h: Harness) -> None:
    def refused() -> float:
        for line in h.client.simulate_get("/metrics").text.splitlines():
            if line.startswith('ingress_orders_refused_total{reason="out_of_stock"}'):
                return float(line.split()[-1])
        return 0.0

    show(h, "sku-a", 0)
    before = refused()
    h.post_order(order_body(("sku-a", 1)))
    h.post_order(order_body(("sku-a", 2)))
    assert refused() == before + 2
