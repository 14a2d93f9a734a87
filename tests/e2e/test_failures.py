"""The invariants hold when pipeline processes die: kill -9 of the sink and of a worker,
and cancellation while the sink is stopped (PostgreSQL arbitrates committed orders)."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from orderstream.client import OrderstreamClient, Placement
from orderstream.topicread import read_to_end
from schemas import topics
from tests.e2e.records import rows_per_order
from tests.e2e.supervised import ctl


@pytest.fixture(scope="module")
def supervised(stack):
    status = ctl("status")
    if "sink" not in status or "worker-0" not in status:
        pytest.fail(f"the pipeline is not running under the supervisor:\n{status}")
    return stack


def pid_of(program: str) -> int:
    out = ctl("pid", program).strip()
    return int(out) if out.isdigit() else 0


def wait_running(program: str, old_pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of(program)
        if pid and pid != old_pid and "RUNNING" in ctl("status", program):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{program} did not come back: {ctl('status', program)}")


def sale_under_fire(api: OrderstreamClient, products: list[str], buyers: int, kill) -> list[dict]:
    """Post ``buyers`` one-unit orders spread over ``products``; call ``kill()`` mid-way.
    Returns their final answers (an order refused at the door is ``rejected``, ``refused``)."""

    def buy(i: int) -> Placement:
        return api.place(f"crash-{i}", [(products[i % len(products)], 1)])

    with ThreadPoolExecutor(max_workers=16) as pool:
        first = list(pool.map(buy, range(buyers // 2)))
        kill()
        second = list(pool.map(buy, range(buyers // 2, buyers)))
        return list(pool.map(lambda p: api.final(p, timeout=120), first + second))


def shipped_by_product(pg: sa.Engine, products: list[str]) -> Counter[str]:
    with pg.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT i.product_id, SUM(i.quantity) FROM order_items i JOIN orders o USING "
                "(order_id) WHERE o.status = 'shipped' AND i.product_id = ANY(:p) GROUP BY 1"
            ),
            {"p": products},
        )
        return Counter({p: int(q) for p, q in rows})


def test_sink_killed_mid_batch_loses_and_duplicates_nothing(
    supervised, api, pg, stocked, reconcile
):
    products = [stocked(f"sinkkill{i}", 30) for i in range(3)]
    old = pid_of("sink")

    finals = sale_under_fire(api, products, 150, lambda: ctl("signal", "KILL", "sink"))
    wait_running("sink", old)

    order_ids = [f["order_id"] for f in finals if not f.get("refused")]
    assert len(set(order_ids)) == len(order_ids) >= 90
    assert Counter(f["status"] for f in finals) == {"shipped": 90, "rejected": 60}
    assert rows_per_order(pg, order_ids) == Counter({o: 1 for o in order_ids})
    assert shipped_by_product(pg, products) == Counter({p: 30 for p in products})
    assert reconcile(products) == []


def test_worker_killed_mid_sale_reserves_nothing_twice(supervised, api, pg, stocked, reconcile):
    products = [stocked(f"workerkill{i}", 20) for i in range(4)]
    old = pid_of("worker-0")

    finals = sale_under_fire(api, products, 120, lambda: ctl("signal", "KILL", "worker-0"))
    wait_running("worker-0", old)

    assert Counter(f["status"] for f in finals) == {"shipped": 80, "rejected": 40}
    assert shipped_by_product(pg, products) == Counter({p: 20 for p in products})
    for product in products:
        assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0
    assert reconcile(products) == []


def test_cancel_of_a_committed_order_before_shipping_releases_stock(
    supervised, api, pg, stocked, reconcile
):
    product = stocked("cancel", 3)
    ctl("stop", "sink")
    try:
        order_id = api.post_order("changed-mind", [(product, 2)])
        deadline = time.monotonic() + 60
        while (api.order(order_id) or {}).get("status") != "committed":
            assert time.monotonic() < deadline, api.order(order_id)
            time.sleep(0.2)
        assert api.wait_product(product, lambda p: p["available"] == 1)["available"] == 1
        assert api.cancel(order_id).status_code == 202
    finally:
        ctl("start", "sink")

    final = api.wait_terminal(order_id)
    assert final["status"] == "cancelled"
    assert api.wait_product(product, lambda p: p["available"] == 3)["available"] == 3
    with pg.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM orders WHERE order_id = :o"), {"o": order_id}
        ).scalar_one()
    assert status == "cancelled"
    assert reconcile([product]) == []


def test_cancel_after_shipping_is_refused(api, stocked, reconcile):
    product = stocked("late-cancel", 2)
    order_id = api.post_order("too-late", [(product, 1)])
    assert api.wait_terminal(order_id)["status"] == "shipped"

    response = api.cancel(order_id)

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.wait_terminal(order_id)["status"] == "shipped"
    assert reconcile([product]) == []


def test_one_shipped_event_per_shipped_order(stack, api, stocked):
    product = stocked("events", 5)
    placements = [api.place(f"ev-{i}", [(product, 1)]) for i in range(8)]
    finals = {p.order_id: api.final(p)["status"] for p in placements if p.order_id is not None}

    shipped = {o for o, s in finals.items() if s == "shipped"}
    assert len(shipped) == 5

    # the relay is at-least-once and asynchronous: read the topic (to its end each time)
    # until every shipped order has its event; a duplicate with another id would show
    topic = stack.settings.topics(topics.ORDERS_SHIPPED)
    deadline = time.monotonic() + 60
    while True:
        events: dict[str, set[str]] = {}
        for record in read_to_end(stack.settings.kafka_bootstrap, topic):
            body = json.loads(record.value)
            if body["order_id"] in finals:
                events.setdefault(body["order_id"], set()).add(body["event_id"])
        if shipped <= set(events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert set(events) == shipped
    assert all(len(ids) == 1 for ids in events.values())
