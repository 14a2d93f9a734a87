"""The rebuild's script arguments: products with their version, orders as the sink writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import fakeredis

from orderstream.core.readmodel import (
    REBUILD_STATUSES_LUA,
    SET_PRODUCTS_LUA,
    Keys,
    batch_calls,
    decode_order,
    decode_product,
    status_args,
)
from orderstream.rebuild import Summary, order_fields, product_calls
from streams.records import ProductState


def test_a_product_goes_with_its_version_and_reads_back_as_the_stock_record() -> None:
    redis = fakeredis.FakeRedis()
    keys = Keys("t:")
    product = ProductState(
        product_id="p",
        name="P",
        price=Decimal("1.20"),
        description="d",
        available=7,
        active=False,
        limit_per_customer=2,
        applied_commands=4,
        applied_requests=9,
    )
    (call,) = list(product_calls(keys, [product]))
    assert call[1][:3] == [14, 4, 9]  # its arg count (2 + 6 fields), then (commands, requests)
    assert redis.register_script(SET_PRODUCTS_LUA)(keys=call[0], args=call[1]) == 1
    assert decode_product("p", redis.hgetall(keys.product("p"))) == {
        "product_id": "p",
        "name": "P",
        "description": "d",
        "price": "1.20",
        "available": 7,
        "active": False,
        "limit_per_customer": 2,
    }


def test_an_order_row_becomes_the_fields_the_ingress_reads() -> None:
    row = SimpleNamespace(
        customer_id="c",
        reason=None,
        total_amount=Decimal("4.00"),
        updated_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    lines = [SimpleNamespace(product_id="p", quantity=2, unit_price=Decimal("2.00"))]
    fields = order_fields(row, lines)
    redis = fakeredis.FakeRedis()
    keys = Keys("t:")
    script = redis.register_script(REBUILD_STATUSES_LUA)
    calls = [((keys.order("o"), keys.order_channel("o")), status_args("shipped", fields))]
    for redis_keys, args in batch_calls(calls):
        assert script(keys=redis_keys, args=args) == 1
    order = decode_order(redis.hgetall(keys.order("o")))
    assert order is not None
    assert (order["status"], order["customer_id"], order["total"]) == ("shipped", "c", "4.00")
    assert order["items"] == [{"product_id": "p", "quantity": 2, "unit_price": "2.00"}]
    assert "reason" not in order
    assert json.loads(json.dumps(order["items"])) == order["items"]


def test_the_summary_says_what_was_written_and_what_was_current() -> None:
    summary = Summary()
    summary.products.done, summary.products.written = 3, 1
    summary.orders.done, summary.orders.written = 10, 4
    assert str(summary).startswith(
        "rebuilt 3 products (1 written, 2 already current or newer) and 10 orders "
        "(4 written, 6 already current)"
    )
