"""A flash sale and its neighbours, through the real ingress, Kafka, Faust and PostgreSQL."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from orderstream.client import OrderstreamClient
from tests.e2e.records import rows_per_order, shipped_units


def test_flash_sale_sells_exactly_the_stock(api: OrderstreamClient, pg, stocked, reconcile):
    stock, buyers = 25, 120
    product = stocked("hot", stock)

    def buy(i: int) -> str:
        return api.post_order(f"buyer-{i}", [(product, 1)])

    with ThreadPoolExecutor(max_workers=32) as pool:
        order_ids = list(pool.map(buy, range(buyers)))
        finals = list(pool.map(api.wait_terminal, order_ids))

    statuses = Counter(f["status"] for f in finals)
    reasons = Counter(f.get("reason") for f in finals if f["status"] == "rejected")
    assert statuses == {"shipped": stock, "rejected": buyers - stock}
    assert reasons == {"out_of_stock": buyers - stock}
    assert shipped_units(pg, product) == stock
    assert rows_per_order(pg, order_ids) == Counter({o: 1 for o in order_ids})
    assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0
    assert reconcile([product]) == []


def test_multi_line_order_is_all_or_nothing(api: OrderstreamClient, pg, stocked, reconcile):
    plenty = stocked("plenty", 5)
    sold_out = stocked("soldout", 1)
    api.wait_terminal(api.post_order("first", [(sold_out, 1)]))

    order_id = api.post_order("second", [(plenty, 2), (sold_out, 1)])
    final = api.wait_terminal(order_id)

    assert final["status"] == "rejected"
    assert final["reason"] == "out_of_stock"
    # the reserved line of the first product is released again
    assert api.wait_product(plenty, lambda p: p["available"] == 5)["available"] == 5
    assert shipped_units(pg, plenty) == 0
    assert reconcile([plenty, sold_out]) == []


def test_idempotent_retries_make_one_order(api: OrderstreamClient, pg, stocked, reconcile):
    product = stocked("idem", 10)
    key = uuid.uuid4().hex

    def post(_: int):
        return api.post_order_response("retrier", [(product, 1)], idempotency_key=key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    # retries either replay the answer or are told the first is still in flight
    assert {r.status_code for r in responses} <= {202, 409}
    order_ids = {r.json()["order_id"] for r in responses if r.status_code == 202}
    assert len(order_ids) == 1
    (order_id,) = order_ids
    assert api.wait_terminal(order_id)["status"] == "shipped"
    again = api.post_order_response("retrier", [(product, 1)], idempotency_key=key)
    assert again.status_code == 202 and again.json()["order_id"] == order_id
    assert shipped_units(pg, product) == 1
    assert api.wait_product(product, lambda p: p["available"] == 9)["available"] == 9
    assert reconcile([product]) == []


def test_discontinued_product_is_rejected(api: OrderstreamClient, stocked, reconcile):
    product = stocked("gone", 10)
    api.discontinue(product)
    assert api.wait_product(product, lambda p: not p["active"])["active"] is False

    final = api.wait_terminal(api.post_order("late", [(product, 1)]))

    assert final["status"] == "rejected"
    assert final["reason"] == "discontinued"
    assert reconcile([product]) == []


def test_restock_lets_later_orders_through(api: OrderstreamClient, pg, stocked, reconcile):
    product = stocked("restock", 1)
    assert api.wait_terminal(api.post_order("a", [(product, 1)]))["status"] == "shipped"
    assert api.wait_terminal(api.post_order("b", [(product, 1)]))["reason"] == "out_of_stock"

    api.restock(product, 2)
    assert api.wait_product(product, lambda p: p["available"] == 2)["available"] == 2

    assert api.wait_terminal(api.post_order("c", [(product, 2)]))["status"] == "shipped"
    assert shipped_units(pg, product) == 3
    assert reconcile([product]) == []


def test_purchase_limit_per_customer(api: OrderstreamClient, stocked, reconcile):
    product = stocked("limited", 10, limit=2)
    assert api.wait_terminal(api.post_order("greedy", [(product, 2)]))["status"] == "shipped"
    final = api.wait_terminal(api.post_order("greedy", [(product, 1)]))
    assert (final["status"], final["reason"]) == ("rejected", "limit_exceeded")
    assert api.wait_terminal(api.post_order("modest", [(product, 1)]))["status"] == "shipped"
    assert reconcile([product]) == []


def test_price_is_taken_from_the_catalog(api: OrderstreamClient, pg, stocked, reconcile):
    product = stocked("priced", 10, price="19.99")
    ok = api.wait_terminal(api.post_order("p", [(product, 2)], expected_total="39.98"))
    assert ok["status"] == "shipped"
    assert ok["total"] == "39.98"
    stale = api.wait_terminal(api.post_order("p2", [(product, 1)], expected_total="9.99"))
    assert (stale["status"], stale["reason"]) == ("rejected", "price_changed")
    assert api.wait_product(product, lambda p: p["available"] == 8)["available"] == 8
    assert reconcile([product]) == []
