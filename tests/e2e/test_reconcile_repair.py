"""``orderstream reconcile --repair`` on the real stack: each repair kind is broken on purpose,
found by ``reconcile`` (which changes nothing), repaired once by ``--repair``, and a second
``--repair`` changes nothing more."""

from __future__ import annotations

import time

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner, Result

from orderstream.core.readmodel import Keys
from orderstream.reconcile import reconcile as reconcile_command
from schemas.common import event_id_for
from tests.e2e.supervised import ctl


@pytest.fixture(scope="module")
def supervised(stack):
    status = ctl("status")
    if "relay" not in status or "sink" not in status:
        pytest.fail(f"the pipeline is not running under the supervisor:\n{status}")
    return stack


@pytest.fixture
def run(stack):
    """``orderstream reconcile --product P ... [--repair]`` in-process, against the stack."""

    def invoke(products: list[str], *extra: str, **env: str) -> Result:
        args = [a for p in products for a in ("--product", p)] + list(extra)
        environ = {**stack.settings.to_env(), **env}
        return CliRunner().invoke(reconcile_command, args, env=environ)

    return invoke


@pytest.fixture
def rds(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    yield client
    client.close()


def repairs(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("repaired ")]


def shipped_in_pg(pg, order_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    query = sa.text("SELECT status FROM orders WHERE order_id = :o")
    while time.monotonic() < deadline:
        with pg.connect() as conn:
            if conn.execute(query, {"o": order_id}).scalar() == "shipped":
                return
        time.sleep(0.2)
    raise TimeoutError(f"order {order_id} not shipped in PostgreSQL")


def wait_clean(reconcile, products: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (found := reconcile(products)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found == []


def test_read_model_drift_is_repaired_from_the_durable_record(
    stack, api, stocked, reconcile, run, rds
):
    product = stocked("repair-rm", 5)
    order = api.buy("rm-buyer", [(product, 2)])
    assert order["status"] == "shipped"
    assert api.wait_product(product, lambda p: p["available"] == 3)["available"] == 3
    assert reconcile([product]) == []
    keys = Keys(stack.settings.topic_prefix)
    order_id = order["order_id"]
    # a status of the same rank (the live writers would never move it) and a wrong availability
    rds.hset(keys.order(order_id), mapping={"status": "cancelled", "rank": "2"})
    rds.hset(keys.product(product), "available", "7")

    checked = run([product])
    assert checked.exit_code == 1, checked.output
    assert f"{order_id}: read model says cancelled, PostgreSQL shipped" in checked.output
    assert f"{product}: read model shows 7 available, table 3" in checked.output
    assert repairs(checked) == []
    assert rds.hget(keys.order(order_id), "status") == b"cancelled"  # read-only
    assert rds.hget(keys.product(product), "available") == b"7"

    repaired = run([product], "--repair")
    assert repairs(repaired) == [
        f"repaired read-model status of order {order_id}: cancelled -> shipped",
        f"repaired read-model availability of product {product}: 7 -> 3",
    ], repaired.output

    again = run([product], "--repair")
    assert again.exit_code == 0, again.output
    assert repairs(again) == [] and "0 repair(s)" in again.output
    assert reconcile([product]) == []
    assert api.order(order_id)["status"] == "shipped"
    assert api.product(product)["available"] == 3
    assert rds.hget(keys.order(order_id), "rank") == b"2"
    assert rds.ttl(keys.order(order_id)) > 0


def test_a_lost_shipped_event_is_queued_again_through_the_outbox(
    supervised, api, pg, stocked, reconcile, run
):
    """Two ways an event goes missing: its outbox row lost before the relay sent it, and a
    row marked sent whose event the topic does not hold (lost after the acknowledgement)."""
    product = stocked("repair-shipped", 4)
    ctl("stop", "relay")
    try:
        lost = api.post_order("lost-row", [(product, 1)])
        acked = api.post_order("lost-after-ack", [(product, 1)])
        shipped_in_pg(pg, lost)
        shipped_in_pg(pg, acked)
        with pg.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM outbox WHERE event_id = :e"),
                {"e": event_id_for(lost, "shipped")},
            )
            conn.execute(
                sa.text("UPDATE outbox SET sent_at = now() WHERE event_id = :e"),
                {"e": event_id_for(acked, "shipped")},
            )
    finally:
        ctl("start", "relay")

    checked = run([product])
    assert checked.exit_code == 1, checked.output
    for order_id in (lost, acked):
        assert f"{order_id}: 0 distinct shipped events, want 1" in checked.output
    assert repairs(checked) == []
    with pg.connect() as conn:  # read-only: the lost row is still missing
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE event_id = :e"),
                {"e": event_id_for(lost, "shipped")},
            ).scalar_one()
            == 0
        )

    repaired = run([product], "--repair")
    lines = repairs(repaired)
    assert len(lines) == 2, repaired.output
    assert f"repaired shipped event of order {lost}: missing -> queued" in "\n".join(lines)
    assert f"repaired shipped event of order {acked}: sent " in "\n".join(lines)

    wait_clean(reconcile, [product])  # the relay published both
    again = run([product], "--repair")
    assert again.exit_code == 0, again.output
    assert repairs(again) == [], again.output
    for order_id in (lost, acked):
        assert api.order(order_id)["status"] == "shipped"
    assert api.product(product)["available"] == 2


def test_an_order_stuck_on_its_way_needs_an_operator(
    supervised, api, pg, stocked, reconcile, run, rds, stack
):
    """A committed order the sink has not written (the sink is down) past the hold time is
    reported, and nothing is changed for it: the sink ships it when it is back."""
    product = stocked("repair-stuck", 2)
    keys = Keys(stack.settings.topic_prefix)
    short_hold = {"ORDERSTREAM_HOLD_TIME_S": "2"}  # the threshold of this reconcile only
    ctl("stop", "sink")
    try:
        order_id = api.post_order("stuck-buyer", [(product, 1)])
        deadline = time.monotonic() + 60
        while rds.hget(keys.order(order_id), "status") != b"committed":
            assert time.monotonic() < deadline, api.order(order_id)
            time.sleep(0.2)
        time.sleep(3)
        repaired = run([product], "--repair", **short_hold)
        assert f"needs an operator: {order_id}: committed in the read model for " in (
            repaired.output
        ), repaired.output
        assert repairs(repaired) == [], repaired.output
        assert rds.hget(keys.order(order_id), "status") == b"committed"  # not decided here
        assert api.product(product)["available"] == 1  # nothing released
    finally:
        ctl("start", "sink")
    assert api.wait_terminal(order_id)["status"] == "shipped"
    again = run([product], "--repair", **short_hold)
    assert again.exit_code == 0, again.output
    assert "needs an operator" not in again.output and repairs(again) == [], again.output
    assert reconcile([product]) == []
