"""Stock decisions and their idempotency (pure: dicts, no Kafka)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from streams_fakes import NOW, DictState, discontinue, release, request, restock, upsert

from schemas.inventory import InventoryCommand
from schemas.orders import OrderLineRequested
from streams import ledger
from streams.decisions import decide_reservation
from streams.records import CustomerHolding, LineState, ProductState, product_key
from streams.stock import line_result

REQ, CMD = "requests", "commands"


def run(state: DictState, inputs: list[tuple[str, int, object]]) -> list[object]:
    """Apply inputs; returns the records emitted to orders.reservations."""
    results: list[object] = []
    for topic, offset, message in inputs:
        if topic == REQ:
            assert isinstance(message, OrderLineRequested)
            line = ledger.on_request(state, message, offset, NOW)
            assert line is not None  # (no prune mark here)
            results.append(line_result(line))
        else:
            ledger.on_command(state, message, offset)  # type: ignore[arg-type]
    return results


def product(state: DictState, product_id: str = "SKU-1") -> ProductState:
    record = state.get(product_key(product_id))
    assert isinstance(record, ProductState)
    return record


def test_reject_reasons_in_order() -> None:
    assert decide_reservation(request("o"), None, 0, NOW)[1].reason == "unknown_product"
    state = DictState()
    run(state, [(CMD, 0, upsert(stock=3, limit=2))])
    p = product(state)
    assert decide_reservation(request("o", quantity=2), p, 1, NOW)[1].reason == "limit_exceeded"
    assert decide_reservation(request("o", quantity=4), p, 0, NOW)[1].reason == "limit_exceeded"
    new, line = decide_reservation(request("o", quantity=2), p, 0, NOW)
    assert line.status == "held" and line.unit_price == p.price and new is not None
    assert new.available == 1
    run(state, [(CMD, 1, discontinue("SKU-1"))])
    assert decide_reservation(request("o"), product(state), 0, NOW)[1].reason == "discontinued"


def test_out_of_stock_first_come_first_served() -> None:
    state = DictState()
    inputs: list[tuple[str, int, object]] = [(CMD, 0, upsert(stock=3))]
    inputs += [(REQ, i, request(f"o{i}", customer_id=f"c{i}")) for i in range(5)]
    results = run(state, inputs)
    assert [type(r).__name__ for r in results] == ["LineReserved"] * 3 + ["LineRejected"] * 2
    assert results[-1].reason == "out_of_stock"  # type: ignore[attr-defined]
    assert product(state).available == 0


def test_limit_counts_units_held_by_customer_and_release_frees_them() -> None:
    state = DictState()
    results = run(
        state,
        [
            (CMD, 0, upsert(stock=10, limit=3)),
            (REQ, 0, request("a", quantity=2)),
            (REQ, 1, request("b", quantity=2)),
            (CMD, 1, release("a", "SKU-1", 2)),
            (REQ, 2, request("c", quantity=3)),
        ],
    )
    assert [type(r).__name__ for r in results] == ["LineReserved", "LineRejected", "LineReserved"]
    assert results[1].reason == "limit_exceeded"  # type: ignore[attr-defined]


def test_replayed_request_reemits_and_never_reserves_twice() -> None:
    state = DictState()
    first = run(state, [(CMD, 0, upsert(stock=5)), (REQ, 7, request("o", quantity=2))])
    again = run(state, [(REQ, 7, request("o", quantity=2)), (REQ, 9, request("o", quantity=2))])
    assert again == first * 2
    assert product(state).available == 3


def test_release_only_a_held_line_once() -> None:
    state = DictState()
    run(
        state,
        [
            (CMD, 0, upsert(stock=5)),
            (REQ, 0, request("o", quantity=2)),
            (CMD, 1, release("o", "SKU-1", 2)),
            (CMD, 1, release("o", "SKU-1", 2)),  # replay
            (CMD, 2, release("o", "SKU-1", 2)),  # re-sent
            (CMD, 3, release("never", "SKU-1", 2)),  # unknown line
        ],
    )
    p = product(state)
    assert (p.available, p.reserved, p.released) == (5, 2, 2)


def test_catalog_command_applies_once() -> None:
    state = DictState()
    run(
        state,
        [
            (CMD, 0, upsert(stock=5)),
            (CMD, 1, restock("SKU-1", 3, "r1")),
            (CMD, 1, restock("SKU-1", 3, "r1")),  # replay
            (CMD, 2, restock("SKU-1", 3, "r1")),  # re-sent, new offset
        ],
    )
    p = product(state)
    assert (p.available, p.added) == (8, 8)


def test_upsert_stock_sets_available_and_counts_difference_as_added() -> None:
    state = DictState()
    run(
        state,
        [
            (CMD, 0, upsert(stock=5)),
            (REQ, 0, request("o", quantity=2)),
            (CMD, 1, upsert(stock=10, command_id="u2")),
        ],
    )
    p = product(state)
    assert p.available == 10 and p.available == p.added - p.reserved + p.released


# ----------------------------------------------------------------- properties
PRODUCTS = ["A", "B"]


@st.composite
def inputs(draw: st.DrawFn) -> list[tuple[str, int, object]]:
    ops: list[tuple[str, int, object]] = []
    offsets = Counter[str]()
    held: list[tuple[str, str, int]] = []
    for pid in PRODUCTS:
        if draw(st.booleans()):
            limit = draw(st.none() | st.integers(1, 4))
            ops.append((CMD, offsets[CMD], upsert(pid, draw(st.integers(0, 6)), limit=limit)))
            offsets[CMD] += 1
    for i in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["req", "req", "req", "restock", "release", "dup", "disc"]))
        pid = draw(st.sampled_from(PRODUCTS))
        message: InventoryCommand | OrderLineRequested
        if kind == "req":
            q = draw(st.integers(1, 3))
            message = request(f"o{i}", pid, q, customer_id=draw(st.sampled_from(["c1", "c2"])))
            held.append((f"o{i}", pid, q))
        elif kind == "dup" and held:
            order, pid, q = draw(st.sampled_from(held))
            message = request(order, pid, q)
        elif kind == "release" and held:
            order, pid, q = draw(st.sampled_from(held))
            message = release(order, pid, q)
        elif kind == "restock":
            message = restock(pid, draw(st.integers(1, 3)), f"r{i}")
        elif kind == "disc":
            message = discontinue(pid, f"d{i}")
        else:
            continue
        topic = REQ if isinstance(message, OrderLineRequested) else CMD
        ops.append((topic, offsets[topic], message))
        offsets[topic] += 1
    return ops


def check_invariants(state: DictState) -> None:
    lines = [r for r in state.data.values() if isinstance(r, LineState)]
    for pid in PRODUCTS:
        p = state.get(product_key(pid))
        if not isinstance(p, ProductState):
            assert not any(line.status == "held" for line in lines if line.product_id == pid)
            continue
        live = sum(ln.quantity for ln in lines if ln.product_id == pid and ln.status == "held")
        assert p.available >= 0
        assert p.available == p.added - p.reserved + p.released
        assert live == p.reserved - p.released <= p.added
        for key, record in state.data.items():
            if isinstance(record, CustomerHolding) and key.split(b"\x1f")[1] == pid.encode():
                customer = key.split(b"\x1f")[2].decode()
                assert record.held == sum(
                    line.quantity
                    for line in lines
                    if (line.product_id, line.customer_id, line.status) == (pid, customer, "held")
                )


@settings(max_examples=200, deadline=None)
@given(inputs())
def test_stock_invariants_hold_after_every_step(ops: list[tuple[str, int, object]]) -> None:
    state = DictState()
    for op in ops:
        run(state, [op])
        check_invariants(state)


@settings(max_examples=200, deadline=None)
@given(inputs(), st.data())
def test_replaying_any_suffix_changes_nothing(
    ops: list[tuple[str, int, object]], data: st.DataObject
) -> None:
    state = DictState()
    first = run(state, ops)
    snapshot = dict(state.data)
    start = data.draw(st.integers(0, len(ops)))
    again = run(state, ops[start:])
    assert state.data == snapshot
    requests_from = sum(1 for topic, _, _ in ops[:start] if topic == REQ)
    assert again == first[requests_from:]


@settings(max_examples=200, deadline=None)
@given(inputs(), st.data())
def test_decisions_follow_input_order(
    ops: list[tuple[str, int, object]], data: st.DataObject
) -> None:
    """A decision depends only on what came before it in the partition."""
    full = run(DictState(), ops)
    cut = data.draw(st.integers(0, len(ops)))
    prefix = run(DictState(), ops[:cut])
    assert full[: len(prefix)] == prefix


@settings(max_examples=300, deadline=None)
@given(inputs(), st.data())
def test_torn_write_then_replay_heals_to_the_same_state(
    ops: list[tuple[str, int, object]], data: st.DataObject
) -> None:
    """Crash: any prefix of the changelog survives; input replays from an earlier commit."""
    reference = DictState()
    boundaries = [0]  # log length after each input
    results = []
    for op in ops:
        results += run(reference, [op])
        boundaries.append(len(reference.log))
    cut = data.draw(st.integers(0, len(reference.log)))
    restored = DictState()
    for key, record in reference.log[:cut]:
        if record is None:
            restored.data.pop(key, None)
        else:
            restored.data[key] = record
    # the committed position is at most the first input whose writes are not all durable
    torn = next((j for j in range(len(ops)) if boundaries[j + 1] > cut), len(ops))
    committed = data.draw(st.integers(0, torn))
    replayed = run(restored, ops[committed:])
    assert restored.data == reference.data
    requests_from = sum(1 for topic, _, _ in ops[:committed] if topic == REQ)
    assert replayed == results[requests_from:]
