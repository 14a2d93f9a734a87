"""The rebuild's writes against real Redis: never older than what a live writer wrote."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from orderstream.core.readmodel import (
    SET_STATUS_LUA,
    Keys,
    ReadModelWrites,
    Sender,
    decode_order,
    decode_product,
    product_fields,
    status_args,
)
from orderstream.rebuild import Rebuilder
from streams.records import ProductState


@pytest.fixture
def rebuilder(stack, namespace: str, redis_client: redis.Redis) -> Iterator[Rebuilder]:
    with Rebuilder(stack.settings_for(namespace)) as rebuilder:
        yield rebuilder


def state(available: int, commands: int, requests: int) -> ProductState:
    return ProductState(
        product_id="p",
        name="P",
        price=Decimal("2.50"),
        available=available,
        limit_per_customer=3,
        applied_commands=commands,
        applied_requests=requests,
    )


def live_product_write(client: redis.Redis, keys: Keys, product: ProductState) -> None:
    """What the stock agent writes (streams.readmodel)."""
    writes = ReadModelWrites(keys)
    fields = product_fields(
        name=product.name,
        price=str(product.price),
        available=product.available,
        active=product.active,
        limit_per_customer=product.limit_per_customer,
    )
    writes.product("p", (product.applied_commands, product.applied_requests), fields)
    Sender(client).send(writes)


def shown(client: redis.Redis, keys: Keys) -> dict | None:
    return decode_product("p", client.hgetall(keys.product("p")))


def test_a_product_is_written_unless_redis_holds_a_newer_version(
    rebuilder: Rebuilder, redis_client: redis.Redis
) -> None:
    keys = rebuilder.keys
    assert rebuilder.write_products([state(8, 3, 7)]) == 1  # missing: written
    assert redis_client.zrange(keys.product_ids(), 0, -1) == [b"p"]
    live_product_write(redis_client, keys, state(5, 3, 10))  # an order was decided since

    assert rebuilder.write_products([state(8, 3, 7)]) == 0  # older: dropped
    assert shown(redis_client, keys)["available"] == 5  # type: ignore[index]
    assert rebuilder.write_products([state(4, 3, 12)]) == 1  # newer: written
    assert rebuilder.write_products([state(4, 3, 12)]) == 1  # the same again: harmless
    product = shown(redis_client, keys)
    assert product is not None and (product["available"], product["limit_per_customer"]) == (4, 3)

    redis_client.hset(keys.product("p"), "available", "999")  # drift at the same version
    assert rebuilder.write_products([state(4, 3, 12)]) == 1
    assert shown(redis_client, keys)["available"] == 4  # type: ignore[index]


def test_an_order_status_never_moves_back_and_a_wrong_final_one_is_replaced(
    rebuilder: Rebuilder, redis_client: redis.Redis
) -> None:
    keys = rebuilder.keys

    def live(order_id: str, status: str) -> None:
        args = status_args(status, {"customer_id": "c"})
        redis_client.eval(
            SET_STATUS_LUA, 2, keys.order(order_id), keys.order_channel(order_id), *args
        )

    def status(order_id: str) -> str | None:
        order = decode_order(redis_client.hgetall(keys.order(order_id)))
        return None if order is None else order["status"]

    final = {"customer_id": "c", "total": "5.00", "items": [{"product_id": "p", "quantity": 2}]}
    live("ahead", "shipped")
    live("behind", "accepted")
    live("wrong", "rejected")
    pubsub = redis_client.pubsub()
    pubsub.subscribe(*(keys.order_channel(o) for o in ("ahead", "behind", "wrong", "lost")))
    orders = [
        ("ahead", "committed", final),  # a lower rank: dropped
        ("behind", "shipped", final),
        ("wrong", "shipped", final),  # the durable final status replaces another final one
        ("lost", "shipped", final),
    ]
    assert rebuilder.write_orders(orders) == 3
    assert [status(o) for o in ("ahead", "behind", "wrong", "lost")] == ["shipped"] * 4
    lost = decode_order(redis_client.hgetall(keys.order("lost")))
    assert lost is not None and lost["total"] == "5.00" and lost["items"][0]["quantity"] == 2
    assert 23 * 3600 < redis_client.ttl(keys.order("lost")) <= 24 * 3600

    assert rebuilder.write_orders(orders) == 0  # a rerun: nothing changes, nothing published
    live("lost", "committed")  # a late live write after the rebuild
    assert status("lost") == "shipped"
    published = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            published.append((message["channel"].decode().rsplit(":", 1)[1], message["data"]))
    assert published == [("behind", b"shipped"), ("wrong", b"shipped"), ("lost", b"shipped")]
