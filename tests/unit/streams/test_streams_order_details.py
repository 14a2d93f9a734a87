"""An order's details (shipping address, payment reference) from its line 0 to its commit:
once per order, whatever order its lines arrive in, across replays and table writes."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from streams_fakes import NOW, DictState, request, upsert

from schemas.orders import OrderCommitted, OrderRejected, PaymentReference, ShippingAddress
from streams import ledger, settlement
from streams.records import LineState, OrderState, decode_order, decode_stock, encode
from streams.settlement import Emit
from streams.stock import line_result

ADDRESS = ShippingAddress(
    name="Ada Lovelace", line1="12 St James's Square", city="London",
    postal_code="SW1Y 4LB", country="GB", phone="+44 20 7946 0000",
)  # fmt: skip
PAYMENT = PaymentReference(type="card", token="tok_1Nf2Zq2eZvKYlo2C")
RES = "orders.reservations"


def decided_lines(order_id: str, count: int, *, stock: int = 10) -> list[LineState]:
    """The line records the stock agent makes of an order whose line 0 carries the details
    (each line in its own product, as ``ingress.intake`` sends them)."""
    state = DictState()
    lines = []
    for line_no in range(count):
        product = f"SKU-{line_no}"
        ledger.on_command(state, upsert(product, stock), offset=line_no)
        line_request = msgspec.structs.replace(
            request(order_id, product, line_no=line_no, line_count=count),
            shipping_address=ADDRESS if line_no == 0 else None,
            payment_method=PAYMENT if line_no == 0 else None,
        )
        line = ledger.on_request(state, line_request, offset=line_no, now=NOW)
        assert line is not None
        lines.append(decode_stock(encode(line)))  # as the changelog holds it
    return lines  # type: ignore[return-value]


def committed_of(effects: list[settlement.Effect]) -> list[OrderCommitted]:
    return [e.value for e in effects if isinstance(e, Emit) and isinstance(e.value, OrderCommitted)]


def test_the_stock_agent_records_the_details_on_line_0_only() -> None:
    first, *others = decided_lines("o1", 3)
    assert (first.shipping_address, first.payment_method) == (ADDRESS, PAYMENT)
    assert all(line.shipping_address is None and line.payment_method is None for line in others)
    result = line_result(first)
    assert (result.shipping_address, result.payment_method) == (ADDRESS, PAYMENT)


def test_a_single_line_order_is_committed_with_its_details_and_a_replay_too() -> None:
    [line] = decided_lines("s1", 1)
    [committed] = committed_of(settlement.settle_single_line(line_result(line)))
    assert (committed.shipping_address, committed.payment_method) == (ADDRESS, PAYMENT)
    assert committed_of(settlement.settle_single_line(line_result(line))) == [committed]


def test_a_single_line_order_without_details_is_committed_with_null() -> None:
    state = DictState()
    ledger.on_command(state, upsert("SKU-1", 5), offset=0)
    line = ledger.on_request(state, request("s2"), offset=0, now=NOW)
    assert line is not None
    [committed] = committed_of(settlement.settle_single_line(line_result(line)))
    assert committed.shipping_address is None and committed.payment_method is None


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 4).flatmap(lambda n: st.permutations(list(range(n)) * 2)))
def test_a_multi_line_order_is_committed_once_with_line_0s_details(arrivals: list[int]) -> None:
    """Lines arrive in any order, some twice; the settler's state goes through its table
    (msgpack) between records, as between batches."""
    count = len(arrivals) // 2
    lines = [line_result(line) for line in decided_lines("m1", count)]
    order: OrderState | None = None
    emitted: list[OrderCommitted] = []
    for offset, line_no in enumerate(arrivals):
        order, effects = settlement.settle(
            order,
            lines[line_no],
            source=RES,
            offset=offset,
            partition=0,
            now=NOW.timestamp(),
            retention_s=3600,
        )
        assert order is not None
        order = decode_order(encode(order))
        emitted += committed_of(effects)
    [committed] = emitted
    assert (committed.shipping_address, committed.payment_method) == (ADDRESS, PAYMENT)
    assert order is not None and order.phase == "committed"
    # a replay of any record re-emits the same commit, details included
    replayed = committed_of(settlement.replay_effects(order))
    assert replayed == [committed]


def test_an_expired_order_missing_line_0_is_rejected_without_details() -> None:
    lines = [line_result(line) for line in decided_lines("m2", 2)]
    order, _ = settlement.settle(
        None, lines[1], source=RES, offset=0, partition=0, now=NOW.timestamp(), retention_s=3600
    )
    assert order is not None and order.shipping_address is None
    later = (NOW + timedelta(seconds=60)).timestamp()
    expired, effects = settlement.expire(
        order, now=later, hold_time_s=30, source=RES, tick_offset=1
    )
    assert expired.phase == "rejected"
    assert next(type(e.value) for e in effects if isinstance(e, Emit)) is OrderRejected
