"""A flash sale and its neighbours, through the real ingress, Kafka, Faust and PostgreSQL.

An order the read model already shows cannot be filled may be refused at the door (409, the
sold-out gate) instead of being accepted and rejected by the pipeline; ``api.final`` gives
both as ``rejected`` with their reason, and the invariants are the same either way.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from orderstream.client import OrderstreamClient, Placement
from orderstream.topicread import read_to_end
from schemas import topics
from tests.e2e.records import rows_per_order, shipped_units


def test_flash_sale_sells_exactly_the_stock(api: OrderstreamClient, pg, stocked, reconcile):
    stock, buyers = 25, 120
    product = stocked("hot", stock)

    def buy(i: int) -> Placement:
        return api.place(f"buyer-{i}", [(product, 1)])

    with ThreadPoolExecutor(max_workers=32) as pool:
        placements = list(pool.map(buy, range(buyers)))
        finals = list(pool.map(api.final, placements))

    statuses = Counter(f["status"] for f in finals)
    reasons = Counter(f.get("reason") for f in finals if f["status"] == "rejected")
    assert statuses == {"shipped": stock, "rejected": buyers - stock}
    assert reasons == {"out_of_stock": buyers - stock}
    assert shipped_units(pg, product) == stock
    order_ids = [p.order_id for p in placements if p.order_id is not None]
    assert rows_per_order(pg, order_ids) == Counter({o: 1 for o in order_ids})
    assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0
    assert reconcile([product]) == []


def test_once_sold_out_orders_are_refused_at_the_door_and_a_restock_is_not(
    stack, api: OrderstreamClient, pg, stocked, reconcile
):
    product = stocked("door", 2)
    assert api.buy("early", [(product, 2)])["status"] == "shipped"
    assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0

    late = api.place("late", [(product, 1)])

    assert late.refusal is not None, late
    assert {k: late.refusal[k] for k in ("reason", "product_id", "line_no", "available")} == {
        "reason": "out_of_stock",
        "product_id": product,
        "line_no": 0,
        "available": 0,
    }
    # nothing of the refused order was published: one line request for the product, early's
    requests = stack.settings.topics(topics.ORDER_REQUESTS)
    keys = [r.key for r in read_to_end(stack.settings.kafka_bootstrap, requests)]
    assert keys.count(product.encode()) == 1
    # a restock opens the door at once, though the read model still shows 0: the order is
    # accepted and the stock agent decides it (before or after the restock: two topics)
    api.restock(product, 1)
    right_after = api.place("right-after-restock", [(product, 1)])
    assert right_after.accepted, right_after.refusal
    if api.final(right_after)["status"] != "shipped":
        assert api.wait_product(product, lambda p: p["available"] == 1)["available"] == 1
        assert api.buy("after-restock", [(product, 1)])["status"] == "shipped"
    assert shipped_units(pg, product) == 3
    assert reconcile([product]) == []


def test_multi_line_order_is_all_or_nothing(api: OrderstreamClient, pg, stocked, reconcile):
    plenty = stocked("plenty", 5)
    sold_out = stocked("soldout", 1)
    api.buy("first", [(sold_out, 1)])

    # refused at the door or rejected by the settler: either way no stock stays held
    final = api.buy("second", [(plenty, 2), (sold_out, 1)])

    assert final["status"] == "rejected"
    assert final["reason"] == "out_of_stock"
    assert api.wait_product(plenty, lambda p: p["available"] == 5)["available"] == 5
    assert shipped_units(pg, plenty) == 0
    assert reconcile([plenty, sold_out]) == []


def test_a_rejected_line_releases_the_reserved_lines_of_its_order(
    api: OrderstreamClient, pg, stocked, reconcile
):
    # the gate cannot judge a limit the customer reaches with what they already hold (the
    # read model has no holdings): this order reaches the settler, which rejects it for its
    # second line and releases the first line's reservation
    plenty = stocked("plenty2", 5)
    limited = stocked("limited2", 5, limit=1)
    assert api.buy("greedy", [(limited, 1)])["status"] == "shipped"
    api.wait_product(limited, lambda p: p["available"] == 4)

    placement = api.place("greedy", [(plenty, 2), (limited, 1)])
    final = api.final(placement)

    assert placement.order_id is not None
    assert (final["status"], final["reason"]) == ("rejected", "limit_exceeded")
    assert api.wait_product(plenty, lambda p: p["available"] == 5)["available"] == 5
    assert shipped_units(pg, plenty) == 0
    assert shipped_units(pg, limited) == 1
    assert rows_per_order(pg, [placement.order_id]) == Counter({placement.order_id: 1})
    assert reconcile([plenty, limited]) == []


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

    final = api.buy("late", [(product, 1)])

    assert final["status"] == "rejected"
    assert final["reason"] == "discontinued"
    assert reconcile([product]) == []


def test_restock_lets_later_orders_through(api: OrderstreamClient, pg, stocked, reconcile):
    product = stocked("restock", 1)
    assert api.wait_terminal(api.post_order("a", [(product, 1)]))["status"] == "shipped"
    assert api.buy("b", [(product, 1)])["reason"] == "out_of_stock"

    api.restock(product, 2)
    assert api.wait_product(product, lambda p: p["available"] == 2)["available"] == 2

    assert api.buy("c", [(product, 2)])["status"] == "shipped"
    assert shipped_units(pg, product) == 3
    assert reconcile([product]) == []


def test_purchase_limit_per_customer(api: OrderstreamClient, pg, stocked, reconcile):
    product = stocked("limited", 10, limit=2)
    # more than the limit in one line: no customer may hold that many, refused at the door
    # (or, while an admin command is still on its way, by the stock agent)
    bulk = api.place("bulk", [(product, 3)])
    assert api.final(bulk)["reason"] == "limit_exceeded"
    if bulk.refusal is not None:
        assert (bulk.refusal["limit"], bulk.refusal["quantity"]) == (2, 3)
    assert api.wait_terminal(api.post_order("greedy", [(product, 2)]))["status"] == "shipped"
    final = api.wait_terminal(api.post_order("greedy", [(product, 1)]))
    assert (final["status"], final["reason"]) == ("rejected", "limit_exceeded")
    assert api.wait_terminal(api.post_order("modest", [(product, 1)]))["status"] == "shipped"
    assert shipped_units(pg, product) == 3
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


def test_prefer_wait_gives_the_final_status_in_the_post(
    api: OrderstreamClient, pg, stocked, reconcile
):
    product = stocked("prefer", 1)

    r = api.post_order_response("eager", [(product, 1)], prefer_wait=10)

    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "wait=10"
    order = r.json()
    assert (order["status"], order["total"]) == ("shipped", "10.00")
    assert r.headers["location"] == f"/v1/orders/{order['order_id']}"
    assert api.order(order["order_id"]) == order
    assert shipped_units(pg, product) == 1
    assert reconcile([product]) == []


def test_the_product_list_pages_in_id_order_from_the_read_model(api: OrderstreamClient, stocked):
    product = stocked("paged", 3)
    # the id just before this product's: this run's ids have no other product in between
    listed = api.products(limit=1, after=product[:-1])
    assert [p["product_id"] for p in listed["items"]] == [product]
    assert listed["items"][0]["available"] == 3
