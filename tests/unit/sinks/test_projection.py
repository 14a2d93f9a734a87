from __future__ import annotations

import json
from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from schemas.common import event_id_for
from schemas.inventory import Discontinue, UpsertProduct
from schemas.orders import (
    CancelOrder,
    OrderCancelled,
    OrderCommitted,
    OrderItem,
    OrderRejected,
    PaymentReference,
    ShippingAddress,
)
from schemas.topics import TopicNames
from sinks.projection import plan_batch
from sinks.records import SinkEvent

TOPICS = TopicNames("t-")


def committed(order_id: str = "o1", lines: int = 2) -> OrderCommitted:
    items = tuple(
        OrderItem(line_no=n, product_id=f"p{n}", quantity=n + 1, unit_price=Decimal("2.50"))
        for n in range(lines)
    )
    total = sum((i.unit_price * i.quantity for i in items), Decimal("0"))
    return OrderCommitted(
        event_id=event_id_for(order_id, "committed"),
        order_id=order_id,
        customer_id="c1",
        items=items,
        total=total,
    )


def cancel(order_id: str = "o1") -> CancelOrder:
    return CancelOrder(event_id=event_id_for(order_id, "cancel-request"), order_id=order_id)


def test_committed_order_is_shipped_with_one_shipped_event() -> None:
    plan = plan_batch([committed()], {}, set(), TOPICS)
    assert [(o.order_id, o.status, o.total_amount) for o in plan.orders] == [
        ("o1", "shipped", Decimal("7.50"))
    ]
    assert [(i.line_no, i.product_id, i.quantity) for i in plan.items] == [
        (0, "p0", 1),
        (1, "p1", 2),
    ]
    assert len(plan.outbox) == 1
    row = plan.outbox[0]
    assert (row.topic, row.key, row.event_id) == (
        "t-orders.shipped",
        "o1",
        event_id_for("o1", "shipped"),
    )
    payload = json.loads(row.payload)
    assert payload["type"] == "order_shipped"
    assert payload["event_id"] == row.event_id
    assert payload["total"] == "7.50"
    assert [u.status for u in plan.read_model] == ["shipped"]


def test_replayed_commit_plans_nothing_new() -> None:
    plan = plan_batch([committed()], {"o1": "shipped"}, set(), TOPICS)
    assert plan.orders == [] and plan.items == [] and plan.outbox == []
    assert [u.status for u in plan.read_model] == ["shipped"]


def test_same_commit_twice_in_one_batch_is_written_once() -> None:
    plan = plan_batch([committed(), committed()], {}, set(), TOPICS)
    assert len(plan.orders) == 1 and len(plan.outbox) == 1 and len(plan.items) == 2


def test_cancel_before_commit_cancels_and_releases_every_line() -> None:
    plan = plan_batch([cancel(), committed(lines=3)], {}, set(), TOPICS)
    assert plan.cancel_requests == ["o1"]
    assert [o.status for o in plan.orders] == ["cancelled"]
    topics = [r.topic for r in plan.outbox]
    assert topics == ["t-orders.cancelled"] + ["t-inventory.commands"] * 3
    assert plan.outbox[0].event_id == event_id_for("o1", "cancelled")
    releases = [json.loads(r.payload) for r in plan.outbox[1:]]
    assert [r["command_id"] for r in releases] == [
        event_id_for("o1", n, "release") for n in range(3)
    ]
    assert [(r["type"], r["line_no"], r["quantity"]) for r in releases] == [
        ("release_line", 0, 1),
        ("release_line", 1, 2),
        ("release_line", 2, 3),
    ]
    assert [r.key for r in plan.outbox[1:]] == ["p0", "p1", "p2"]


def test_cancel_recorded_in_an_earlier_batch_wins() -> None:
    plan = plan_batch([committed()], {}, {"o1"}, TOPICS)
    assert [o.status for o in plan.orders] == ["cancelled"]
    assert plan.cancel_requests == []


def test_cancel_after_shipped_is_too_late() -> None:
    plan = plan_batch([cancel()], {"o1": "shipped"}, set(), TOPICS)
    assert plan.orders == [] and plan.outbox == []
    assert plan.cancel_requests == []


def test_cancel_in_the_same_batch_as_the_commit_wins_whatever_the_order() -> None:
    # nothing of a batch is shipped before it commits, so its cancels all came in time
    plan = plan_batch([committed(), cancel()], {}, set(), TOPICS)
    assert [o.status for o in plan.orders] == ["cancelled"]
    assert [r.topic for r in plan.outbox] == ["t-orders.cancelled"] + ["t-inventory.commands"] * 2
    late = plan_batch([cancel()], {"o1": "shipped"}, set(), TOPICS)
    assert late.is_empty


def test_settler_cancellation_and_rejection_get_a_row_without_outbox() -> None:
    events: list[SinkEvent] = [
        OrderCancelled(event_id="e1", order_id="o1", customer_id="c1"),
        OrderRejected(event_id="e2", order_id="o2", customer_id="c2", reason="out_of_stock"),
    ]
    plan = plan_batch(events, {}, set(), TOPICS)
    assert [(o.order_id, o.status, o.reason) for o in plan.orders] == [
        ("o1", "cancelled", None),
        ("o2", "rejected", "out_of_stock"),
    ]
    assert plan.outbox == []
    assert plan_batch(events, {"o1": "cancelled", "o2": "rejected"}, set(), TOPICS).orders == []


def test_settler_cancel_of_an_order_already_cancelled_by_the_sink_is_a_no_op() -> None:
    plan = plan_batch(
        [OrderCancelled(event_id="x", order_id="o1", customer_id="c1")],
        {"o1": "cancelled"},
        set(),
        TOPICS,
    )
    assert plan.orders == [] and plan.outbox == []


def test_product_upsert_then_discontinue_nets_to_inactive() -> None:
    plan = plan_batch(
        [
            UpsertProduct(command_id="a", product_id="p1", name="Mug", price=Decimal("9.99")),
            Discontinue(command_id="b", product_id="p1"),
            Discontinue(command_id="c", product_id="p2"),
        ],
        {},
        set(),
        TOPICS,
    )
    assert plan.products["p1"].active is False and plan.products["p1"].name == "Mug"
    assert plan.products["p2"].name is None and plan.products["p2"].active is False


EVENT_KINDS = st.sampled_from(["commit", "cancel", "reject", "settler_cancel"])


@given(st.lists(st.tuples(EVENT_KINDS, st.integers(0, 4)), max_size=30))
def test_replaying_any_batch_over_its_own_result_plans_nothing(
    script: list[tuple[str, int]],
) -> None:
    """Idempotence: feed a batch, apply its plan to the 'database', feed it again."""
    events: list[SinkEvent] = []
    for kind, n in script:
        oid = f"o{n}"
        if kind == "commit":
            events.append(committed(oid, 1))
        elif kind == "cancel":
            events.append(cancel(oid))
        elif kind == "reject":
            events.append(
                OrderRejected(event_id="r", order_id=oid, customer_id="c", reason="expired")
            )
        else:
            events.append(OrderCancelled(event_id="s", order_id=oid, customer_id="c"))
    first = plan_batch(events, {}, set(), TOPICS)
    status = {o.order_id: o.status for o in first.orders}
    assert len(status) == len(first.orders)  # one row per order
    assert len({r.event_id for r in first.outbox}) == len(first.outbox)
    second = plan_batch(events, status, set(first.cancel_requests), TOPICS)
    assert second.orders == [] and second.outbox == [] and second.cancel_requests == []
    shipped = [o.order_id for o in first.orders if o.status == "shipped"]
    assert sorted(shipped) == sorted(
        str(r.key) for r in first.outbox if r.topic == "t-orders.shipped"
    )


# One order per Idempotency-Key: ids of one request key (schemas.orders.new_order_id's form)
KEY = "0123456789abcdef"
FIRST, SECOND = KEY + "0" * 16, KEY + "1" * 16


def test_a_second_order_of_a_request_key_is_rejected_and_its_stock_released() -> None:
    plan = plan_batch([committed(SECOND)], {}, set(), TOPICS, key_owners={KEY: FIRST})

    assert [(o.order_id, o.status, o.reason) for o in plan.orders] == [
        (SECOND, "rejected", "duplicate_request")
    ]
    assert plan.items == []
    topics = [row.topic for row in plan.outbox]
    assert topics == ["t-orders.rejected", "t-inventory.commands", "t-inventory.commands"]
    assert {json.loads(r.payload)["reason"] for r in plan.outbox} == {"duplicate_request"}
    assert [json.loads(r.payload)["line_no"] for r in plan.outbox[1:]] == [0, 1]
    assert [(u.order_id, u.status) for u in plan.read_model] == [(SECOND, "rejected")]


def test_two_orders_of_one_request_key_in_one_batch_ship_once() -> None:
    plan = plan_batch([committed(FIRST), committed(SECOND)], {}, set(), TOPICS)

    assert [(o.order_id, o.status, o.request_key) for o in plan.orders] == [
        (FIRST, "shipped", KEY),
        (SECOND, "rejected", KEY),
    ]
    assert [r.topic for r in plan.outbox].count("t-orders.shipped") == 1


def test_a_rejected_order_does_not_hold_its_request_key() -> None:
    rejected = OrderRejected(event_id="r", order_id=FIRST, customer_id="c1", reason="out_of_stock")
    plan = plan_batch([rejected, committed(SECOND)], {}, set(), TOPICS)

    assert [(o.order_id, o.status) for o in plan.orders] == [
        (FIRST, "rejected"),
        (SECOND, "shipped"),
    ]


def test_a_cancelled_duplicate_is_rejected_without_releasing_anything() -> None:
    # the settler cancelled it and released its lines itself
    cancelled = OrderCancelled(event_id="x", order_id=SECOND, customer_id="c1")
    plan = plan_batch([cancelled], {}, set(), TOPICS, key_owners={KEY: FIRST})

    assert [(o.order_id, o.status, o.reason) for o in plan.orders] == [
        (SECOND, "rejected", "duplicate_request")
    ]
    assert plan.outbox == []


def test_replaying_a_duplicate_plans_nothing_new() -> None:
    plan = plan_batch(
        [committed(SECOND)], {SECOND: "rejected"}, set(), TOPICS, key_owners={KEY: FIRST}
    )
    assert plan.orders == [] and plan.outbox == []


def test_ids_not_made_for_a_request_key_are_never_duplicates() -> None:
    plan = plan_batch([committed("o1"), committed("o1-b")], {}, set(), TOPICS)
    assert [o.status for o in plan.orders] == ["shipped", "shipped"]


ADDRESS = ShippingAddress(
    name="Ada Lovelace", line1="12 St James's Square", city="London",
    postal_code="SW1Y 4LB", country="GB",
)  # fmt: skip
PAYMENT = PaymentReference(type="paypal", token="PAYID-M4ABCDEF")


def test_the_order_details_are_stored_and_shipped() -> None:
    event = msgspec.structs.replace(committed(), shipping_address=ADDRESS, payment_method=PAYMENT)
    plan = plan_batch([event], {}, set(), TOPICS)
    [row] = plan.orders
    assert (row.shipping_address, row.payment_method) == (ADDRESS, PAYMENT)
    stored = json.loads(msgspec.json.encode(row))  # as sinks.store sends it to PostgreSQL
    assert stored["shipping_address"]["postal_code"] == "SW1Y 4LB"
    assert stored["payment_method"] == {"type": "paypal", "token": "PAYID-M4ABCDEF"}
    [shipped] = [json.loads(r.payload) for r in plan.outbox]
    assert shipped["type"] == "order_shipped"
    assert shipped["shipping_address"] == msgspec.to_builtins(ADDRESS)
    assert shipped["payment_method"] == msgspec.to_builtins(PAYMENT)


def test_an_order_without_details_ships_with_null() -> None:
    plan = plan_batch([committed()], {}, set(), TOPICS)
    assert plan.orders[0].shipping_address is None and plan.orders[0].payment_method is None
    shipped = json.loads(plan.outbox[0].payload)
    assert shipped["shipping_address"] is None and shipped["payment_method"] is None


def test_a_product_description_is_upserted_and_kept_by_a_discontinue() -> None:
    upsert = UpsertProduct(
        command_id="u1", product_id="p1", name="Mug", price=Decimal("9.50"), description="350 ml"
    )
    plan = plan_batch([upsert, Discontinue(command_id="d1", product_id="p1")], {}, set(), TOPICS)
    change = plan.products["p1"]
    assert (change.active, change.name, change.description) == (False, "Mug", "350 ml")
