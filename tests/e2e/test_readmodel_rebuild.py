"""``orderstream readmodel rebuild`` on the running stack: a broken read model is written
again from PostgreSQL and the stock table, and a rebuild racing live writes never puts an
older value back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
import sqlalchemy as sa

from orderstream.client import OrderstreamClient, Placement
from orderstream.core.readmodel import Keys
from orderstream.rebuild import Rebuilder
from tests.e2e.supervised import REPO


def wait_in_postgres(pg: sa.Engine, order_ids: list[str], timeout: float = 60.0) -> None:
    """Until the sink has written every order (a final answer can come before its row)."""
    deadline = time.monotonic() + timeout
    query = sa.text("SELECT count(*) FROM orders WHERE order_id = ANY(:ids)")
    while True:
        with pg.connect() as conn:
            if conn.execute(query, {"ids": order_ids}).scalar_one() == len(order_ids):
                return
        assert time.monotonic() < deadline, "orders not in PostgreSQL"
        time.sleep(0.2)


def rebuild_cli(stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "orderstream.cli", "readmodel", "rebuild", *args],
        cwd=REPO,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def progress(out: str, what: str) -> list[tuple[int, int]]:
    """The (done, total) lines the command printed for ``what``."""
    found = re.findall(rf"^{what}: (\d+)/(\d+)$", out, re.MULTILINE)
    return [(int(done), int(total)) for done, total in found]


def test_a_broken_read_model_is_rebuilt_from_the_durable_record(
    stack, api: OrderstreamClient, pg, stocked, reconcile
):
    scarce, plenty = stocked("scarce", 3), stocked("plenty", 10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        placements = list(pool.map(lambda i: api.place(f"rb-{i}", [(scarce, 1)]), range(6)))
        placements += list(pool.map(lambda i: api.place(f"rb-p{i}", [(plenty, 2)]), range(3)))
        finals = list(pool.map(api.final, placements))
    truth = {p.order_id: f["status"] for p, f in zip(placements, finals, strict=True) if p.order_id}
    assert sorted(truth.values()).count("shipped") == 6  # 3 of scarce, 3 of plenty
    assert api.wait_product(scarce, lambda p: p["available"] == 0)["available"] == 0
    assert api.wait_product(plenty, lambda p: p["available"] == 4)["available"] == 4
    wait_in_postgres(pg, list(truth))

    # break it: hashes lost, behind, wrong; a product lost, one with a wrong availability
    client = redis.Redis.from_url(stack.settings.redis_url)
    keys = Keys(stack.settings.topic_prefix)
    for n, order_id in enumerate(sorted(truth)):
        if n % 3 == 0:
            client.delete(keys.order(order_id))
        elif n % 3 == 1:
            client.hset(keys.order(order_id), mapping={"status": "accepted", "rank": "0"})
        else:
            wrong = "rejected" if truth[order_id] == "shipped" else "shipped"
            client.hset(keys.order(order_id), mapping={"status": wrong, "rank": "2"})
    client.delete(keys.product(scarce))
    client.hset(keys.product(plenty), "available", "999")
    assert api.product(plenty)["available"] == 999
    assert any(api.order(o)["status"] != status for o, status in truth.items())
    assert reconcile([scarce, plenty]) != []

    # every order of the last hour: PostgreSQL holds a rejected order without lines, so
    # `--product` (orders with lines of the product) would leave the rejected ones out
    out = rebuild_cli(stack, "--since-hours", "1")

    products, orders = progress(out, "products"), progress(out, "orders")
    assert products[0] == (0, products[-1][1]) and products[-1][0] == products[-1][1] >= 2, out
    assert orders[0][0] == 0 and orders[-1][0] == orders[-1][1] >= len(truth), out
    assert out.splitlines()[-1].startswith(f"rebuilt {products[-1][0]} products"), out
    assert {o: api.order(o)["status"] for o in truth} == truth
    assert api.product(scarce)["available"] == 0
    assert api.product(plenty)["available"] == 4
    assert reconcile([scarce, plenty]) == []
    # a rerun (after an interruption, say) changes no order
    again = rebuild_cli(stack, "--product", scarce, "--product", plenty)
    assert "products: 2/2" in again and " orders (0 written" in again, again
    assert {o: api.order(o)["status"] for o in truth} == truth
    assert reconcile([scarce, plenty]) == []
    client.close()


def test_a_rebuild_of_an_older_stock_record_does_not_put_old_availability_back(
    stack, api: OrderstreamClient, stocked, reconcile
):
    product = stocked("stale", 5)
    with Rebuilder(stack.settings) as rebuilder:
        before = rebuilder.read_products([product])  # what a slow rebuild read
        assert [s.available for s in before] == [5]
        for i in range(2):
            assert api.buy(f"stale-{i}", [(product, 1)])["status"] == "shipped"
        assert api.wait_product(product, lambda p: p["available"] == 3)["available"] == 3

        written = rebuilder.write_products(before)

    assert api.product(product)["available"] == 3
    assert written == 0  # Redis holds a newer version
    assert reconcile([product]) == []


def test_a_rebuild_racing_live_orders_never_regresses_a_value(
    stack, api: OrderstreamClient, pg, stocked, reconcile
):
    product = stocked("race", 20)
    done = threading.Event()
    runs: list[str] = []

    def rebuild_while_orders_flow() -> None:
        with Rebuilder(stack.settings, page=5) as rebuilder:
            while not done.is_set():
                runs.append(str(rebuilder.run([product])))

    racer = threading.Thread(target=rebuild_while_orders_flow)
    racer.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            placements: list[Placement] = list(
                pool.map(lambda i: api.place(f"race-{i}", [(product, 1)]), range(40))
            )
            finals = list(pool.map(api.final, placements))
    finally:
        done.set()
        racer.join(timeout=120)
    assert runs, "the rebuild never ran"

    truth = {p.order_id: f["status"] for p, f in zip(placements, finals, strict=True) if p.order_id}
    assert [f["status"] for f in finals].count("shipped") == 20
    wait_in_postgres(pg, list(truth))
    assert {o: api.order(o)["status"] for o in truth} == truth
    assert api.product(product)["available"] == 0
    assert reconcile([product]) == []
