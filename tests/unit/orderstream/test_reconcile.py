"""reconcile's checks find every kind of violation they claim to (and none on clean data)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from orderstream.reconcile import check_orders, check_request_keys, check_stock
from orderstream.stockview import StockSnapshot


def item(line_no: int, product_id: str = "P", quantity: int = 1, price: str = "2.00") -> Any:
    return SimpleNamespace(
        line_no=line_no, product_id=product_id, quantity=quantity, unit_price=Decimal(price)
    )


def order(
    status: str, *items: Any, total: str | None = None, key: str | None = None
) -> dict[str, Any]:
    computed = sum((i.unit_price * i.quantity for i in items), Decimal("0"))
    return {
        "status": status,
        "total": Decimal(total) if total else computed,
        "items": list(items),
        "request_key": key,
    }


def stock(available: int, added: int, reserved: int, released: int) -> StockSnapshot:
    return StockSnapshot("P", available, added, reserved, released, True)


def invariants(violations: list[Any]) -> list[str]:
    return sorted(v.invariant for v in violations)


def test_clean_data_has_no_violation() -> None:
    orders = {
        "a": order("shipped", item(0, quantity=2)),
        "b": order("rejected"),
        "c": order("cancelled", item(0)),
    }
    assert check_orders(orders) == []
    # 2 units shipped; c's unit was reserved then released
    assert check_stock(orders, {"P": stock(8, 10, 3, 1)}, ["P"]) == []


def test_non_terminal_order_is_lost() -> None:
    assert invariants(check_orders({"a": order("committed", item(0))})) == ["3 nothing lost"]


def test_shipped_order_missing_a_line_is_not_all_or_nothing() -> None:
    found = check_orders({"a": order("shipped", item(0), item(2, "Q"))})
    assert invariants(found) == ["5 all or nothing"]


def test_shipped_total_must_match_its_lines() -> None:
    found = check_orders({"a": order("shipped", item(0), total="3.00")})
    assert invariants(found) == ["5 all or nothing"]


def test_same_product_twice_in_one_order_is_a_duplicate() -> None:
    found = check_orders({"a": order("shipped", item(0), item(1))})
    assert invariants(found) == ["4 no duplicates"]


def test_shipping_more_than_ever_added_is_oversold() -> None:
    orders = {"a": order("shipped", item(0, quantity=5))}
    found = check_stock(orders, {"P": stock(-1, 4, 5, 0)}, ["P"])
    assert "1 no oversell" in invariants(found)
    assert any("available -1" in v.detail for v in found)
    assert any("ever added 4" in v.detail for v in found)


def test_available_must_equal_added_minus_reserved_plus_released() -> None:
    orders = {"a": order("shipped", item(0))}
    found = check_stock(orders, {"P": stock(10, 10, 1, 0)}, ["P"])
    assert invariants(found) == ["2 conservation"]


def test_units_held_must_match_units_shipped_in_postgres() -> None:
    orders = {"a": order("shipped", item(0))}
    found = check_stock(orders, {"P": stock(7, 10, 3, 0)}, ["P"])  # 3 held, 1 shipped
    assert invariants(found) == ["2 conservation"]
    assert "holds 3 units" in found[0].detail


def test_shipped_product_without_stock_state() -> None:
    found = check_stock({"a": order("shipped", item(0))}, {}, ["P"])
    assert invariants(found) == ["1 no oversell"]


def test_one_idempotency_key_with_one_order_named_by_its_claim_is_clean() -> None:
    orders = {
        "k1-a": order("shipped", item(0), key="k1"),
        "k1-b": order("rejected", key="k1"),  # a duplicate, written rejected
        "k2-a": order("cancelled", item(0), key="k2"),
        "old": order("shipped", item(0)),  # from before request keys
    }
    assert check_request_keys(orders, {"k1": "k1-a", "k2": "k2-a"}) == []
    assert check_request_keys(orders, {}) == []  # claims expired: nothing to compare


def test_two_orders_of_one_key_that_hold_stock_are_a_violation() -> None:
    orders = {"a": order("shipped", item(0), key="k"), "b": order("cancelled", key="k")}
    assert invariants(check_request_keys(orders, {})) == ["7 truthful answers"]


def test_an_order_its_client_was_not_told_of_is_a_violation() -> None:
    # the client's answers named order a; order b shipped anyway
    orders = {"b": order("shipped", item(0), key="k")}
    found = check_request_keys(orders, {"k": "a"})
    assert invariants(found) == ["7 truthful answers"]
    assert "answered with order a" in found[0].detail


def test_shipped_events_one_per_shipped_order_and_none_for_the_others() -> None:
    from orderstream.reconcile import ShippedLog, check_shipped_events

    orders = {
        "a": order("shipped"),
        "b": order("shipped"),
        "c": order("rejected"),
        "d": order("shipped"),
    }
    log = ShippedLog({"a": {"e1"}, "b": {"e2", "e3"}, "c": {"e4"}}, {}, partitions=8)
    found, expired = check_shipped_events(orders, log)
    assert sorted((v.subject, v.detail) for v in found) == [
        ("b", "2 distinct shipped events, want 1"),
        ("c", "1 distinct shipped events, want 0"),
        ("d", "0 distinct shipped events, want 1"),
    ]
    assert expired == 0


def test_a_shipped_event_retention_deleted_is_counted_not_reported() -> None:
    from datetime import UTC, datetime, timedelta

    from orderstream.reconcile import ShippedLog, check_shipped_events
    from schemas.partitioning import partition_for

    cutoff = datetime(2026, 12, 1, tzinfo=UTC)
    old = {**order("shipped"), "updated_at": cutoff - timedelta(days=2)}
    new = {**order("shipped"), "updated_at": cutoff + timedelta(hours=1)}
    orders = {"old": old, "new": new, "old-dup": dict(old)}
    expired_before = {
        partition_for(o.encode(), 8): int(cutoff.timestamp() * 1000) for o in ("old", "new")
    }
    log = ShippedLog({"old-dup": {"x", "y"}}, expired_before, partitions=8)
    found, expired = check_shipped_events(orders, log)
    # "old" shipped before its partition's first record held: not checkable; "new" was
    # shipped after it, so its missing event is a violation; duplicates are always one
    assert sorted(v.subject for v in found) == ["new", "old-dup"]
    assert expired == 1
