"""Settlement of orders (pure): all lines or none, cancel, expiry, replays."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streams_fakes import NOW

from schemas import topics
from schemas.inventory import ReleaseLine
from schemas.orders import (
    CancelOrder,
    LineRejected,
    LineReserved,
    OrderCancelled,
    OrderCommitted,
    OrderRejected,
)
from streams import settlement
from streams.records import OrderState
from streams.settlement import Effect, Emit

RES, CAN = "orders.reservations", "orders.cancellations"
T0 = NOW.timestamp()


def reserved(
    order_id: str,
    line_no: int,
    count: int,
    price: str = "2.50",
    qty: int = 2,
    expected: str | None = None,
) -> LineReserved:
    return LineReserved(
        event_id=f"{order_id}-{line_no}",
        order_id=order_id,
        line_no=line_no,
        line_count=count,
        customer_id="c1",
        product_id=f"P{line_no}",
        quantity=qty,
        unit_price=Decimal(price),
        expected_total=Decimal(expected) if expected else None,
        decided_at=NOW,
    )


def rejected(order_id: str, line_no: int, count: int, reason: str = "out_of_stock") -> LineRejected:
    return LineRejected(
        event_id=f"{order_id}-{line_no}",
        order_id=order_id,
        line_no=line_no,
        line_count=count,
        customer_id="c1",
        product_id=f"P{line_no}",
        quantity=2,
        reason=reason,  # type: ignore[arg-type]
        decided_at=NOW,
    )


def cancel(order_id: str) -> CancelOrder:
    return CancelOrder(event_id=f"cancel-{order_id}", order_id=order_id)


class Settler:
    """Feeds records in order with increasing offsets per source, like one partition."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderState] = {}
        self.offsets = {RES: 0, CAN: 0}
        self.effects: list[Effect] = []

    def feed(self, record: object, *, now: float = T0, offset: int | None = None) -> list[Effect]:
        source = CAN if isinstance(record, CancelOrder) else RES
        if offset is None:
            offset = self.offsets[source]
            self.offsets[source] += 1
        order_id = record.order_id  # type: ignore[attr-defined]
        new, effects = settlement.settle(
            self.orders.get(order_id),
            record,
            source=source,
            offset=offset,  # type: ignore[arg-type]
            partition=0,
            now=now,
            retention_s=3600,
        )
        if new is not None:
            self.orders[order_id] = new
        self.effects += effects
        return effects

    def emitted(self, kind: type) -> list[object]:
        return [e.value for e in self.effects if isinstance(e, Emit) and isinstance(e.value, kind)]

    def released_lines(self) -> set[tuple[str, int]]:
        return {(r.order_id, r.line_no) for r in self.emitted(ReleaseLine)}  # type: ignore[attr-defined]


def test_commits_when_every_line_is_reserved_by_line_number() -> None:
    s = Settler()
    assert s.feed(reserved("o", 1, 3)) == []
    assert s.feed(reserved("o", 1, 3)) == []  # duplicate: not counted
    assert s.feed(reserved("o", 0, 3)) == []
    effects = s.feed(reserved("o", 2, 3))
    [committed] = s.emitted(OrderCommitted)
    assert committed.total == Decimal("15.00") and len(committed.items) == 3  # type: ignore[attr-defined]
    assert any(isinstance(e, settlement.StatusUpdate) and e.status == "committed" for e in effects)
    assert [e.topic for e in effects if isinstance(e, Emit)] == [topics.ORDERS_COMMITTED]


def test_rejected_line_releases_reserved_lines_including_late_ones() -> None:
    s = Settler()
    s.feed(reserved("o", 0, 3))
    s.feed(rejected("o", 1, 3))
    [rej] = s.emitted(OrderRejected)
    assert rej.reason == "out_of_stock" and rej.line_no == 1  # type: ignore[attr-defined]
    assert s.released_lines() == {("o", 0)}
    s.feed(reserved("o", 2, 3))
    assert s.released_lines() == {("o", 0), ("o", 2)}
    assert len(s.emitted(OrderRejected)) == 1 and not s.emitted(OrderCommitted)


def test_price_changed_rejects_and_releases() -> None:
    s = Settler()
    s.feed(reserved("o", 0, 1, expected="4.00"))
    [rej] = s.emitted(OrderRejected)
    assert rej.reason == "price_changed"  # type: ignore[attr-defined]
    assert s.released_lines() == {("o", 0)}
    s2 = Settler()
    s2.feed(reserved("p", 0, 1, expected="5.00"))
    assert s2.emitted(OrderCommitted)


def test_cancel_pending_committed_and_unknown() -> None:
    s = Settler()
    s.feed(reserved("pending", 0, 2))
    s.feed(cancel("pending"))
    assert s.released_lines() == {("pending", 0)} and len(s.emitted(OrderCancelled)) == 1
    s.feed(reserved("pending", 1, 2))
    assert ("pending", 1) in s.released_lines()

    s.feed(reserved("done", 0, 1))
    assert s.feed(cancel("done")) == []  # the sink arbitrates committed orders

    assert s.feed(cancel("early")) == []
    s.feed(reserved("early", 0, 2))
    s.feed(rejected("early", 1, 2))
    assert ("early", 0) in s.released_lines()
    assert [c.order_id for c in s.emitted(OrderCancelled)] == ["pending", "early"]  # type: ignore[attr-defined]
    assert s.orders["early"].phase == "cancelled"


def test_expiry_rejects_and_releases_only_after_hold_time() -> None:
    s = Settler()
    s.feed(reserved("o", 0, 2))
    order = s.orders["o"]
    same, effects = settlement.expire(order, now=T0 + 5, hold_time_s=10, source=RES, tick_offset=9)
    assert effects == [] and same is order
    expired, effects = settlement.expire(
        order, now=T0 + 10, hold_time_s=10, source=RES, tick_offset=9
    )
    assert expired.phase == "rejected" and expired.reason == "expired"
    assert {
        (e.value.order_id, e.value.line_no)
        for e in effects  # type: ignore[attr-defined]
        if isinstance(e, Emit) and isinstance(e.value, ReleaseLine)
    } == {("o", 0)}


def test_replayed_record_reemits_effects_without_changing_state() -> None:
    s = Settler()
    s.feed(reserved("o", 0, 2))
    s.feed(rejected("o", 1, 2))
    state = s.orders["o"]
    effects = s.feed(rejected("o", 1, 2), offset=1)  # the same message again (crash replay)
    assert s.orders["o"] == state
    assert {type(e.value) for e in effects if isinstance(e, Emit)} == {OrderRejected, ReleaseLine}


def test_stale_line_of_a_pruned_order_is_ignored() -> None:
    s = Settler()
    assert s.feed(reserved("old", 0, 1), now=T0 + 7200) == []
    assert "old" not in s.orders


@st.composite
def streams_of_records(draw: st.DrawFn) -> list[object]:
    records: list[object] = []
    for n in range(draw(st.integers(1, 6))):
        count = draw(st.integers(1, 3))
        for line_no in range(count):
            if draw(st.integers(0, 9)) == 0:
                continue  # a line that never arrives
            ok = draw(st.integers(0, 3)) > 0
            line = reserved(f"o{n}", line_no, count) if ok else rejected(f"o{n}", line_no, count)
            records += [line] * draw(st.integers(1, 2))
        if draw(st.integers(0, 4)) == 0:
            records.append(cancel(f"o{n}"))
    return draw(st.permutations(records))


@settings(max_examples=300, deadline=None)
@given(streams_of_records())
def test_all_or_nothing(records: list[object]) -> None:
    s = Settler()
    for record in records:
        s.feed(record)
    for order in list(s.orders.values()):
        if order.phase == "pending":
            s.orders[order.order_id], effects = settlement.expire(
                order, now=T0 + 60, hold_time_s=30, source=RES, tick_offset=999
            )
            s.effects += effects
    committed = {c.order_id for c in s.emitted(OrderCommitted)}  # type: ignore[attr-defined]
    released = s.released_lines()
    for order_id, order in s.orders.items():
        reserved_lines = {
            (order_id, line_no) for line_no, line in order.lines.items() if line.reserved
        }
        if order_id in committed:
            assert order.phase == "committed"
            assert set(order.lines) == set(range(order.line_count or 0))
            assert not reserved_lines & released
        else:
            assert order.phase in ("rejected", "cancelled")
            assert reserved_lines <= released  # holds no stock
    assert len(s.emitted(OrderCommitted)) == len(committed)  # at most one commit per order


def stable(effects: list[Effect]) -> list[Effect]:
    """Effects without the one field that is a wall-clock stamp (a release's issued_at)."""
    return [
        Emit(e.topic, e.key, msgspec.structs.replace(e.value, issued_at=NOW))
        if isinstance(e, Emit) and isinstance(e.value, ReleaseLine)
        else e
        for e in effects
    ]


def test_single_line_order_settled_in_place_as_the_settler_would() -> None:
    for line in (
        reserved("s1", 0, 1),  # committed, total 5.00
        rejected("s2", 0, 1, reason="limit_exceeded"),
        reserved("s3", 0, 1, expected="4.00"),  # price changed: rejected, line released
    ):
        settler = Settler()
        settler.feed(line, now=line.decided_at.timestamp())
        in_place = stable(settlement.settle_single_line(line))
        assert in_place == stable(settler.effects)
        # a replay: the same events with the same ids
        assert in_place == stable(settlement.settle_single_line(line))
    committed = [
        e.value for e in settlement.settle_single_line(reserved("s1", 0, 1)) if isinstance(e, Emit)
    ]
    assert isinstance(committed[0], OrderCommitted) and committed[0].total == Decimal("5.00")
    rejected_effects = settlement.settle_single_line(reserved("s3", 0, 1, expected="4.00"))
    kinds = [type(e.value).__name__ for e in rejected_effects if isinstance(e, Emit)]
    assert kinds == ["OrderRejected", "ReleaseLine"]


def test_single_line_settlement_refuses_a_line_of_a_larger_order() -> None:
    with pytest.raises(ValueError):
        settlement.settle_single_line(reserved("m", 0, 2))
