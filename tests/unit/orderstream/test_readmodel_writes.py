"""The read model's writer API: a batch reaches Redis in the order the sold-out gate needs,
the same way over a sync and an async client."""

from __future__ import annotations

import asyncio

import fakeredis

from orderstream.core.readmodel import (
    Keys,
    ReadModel,
    ReadModelWrites,
    Sender,
    decode_order,
    decode_product,
    product_fields,
)

KEYS = Keys("t:")


def fields(available: int) -> dict[str, str]:
    return product_fields(
        name="A", price="1.00", available=available, active=True, limit_per_customer=None
    )


def batch() -> ReadModelWrites:
    writes = ReadModelWrites(KEYS, chunk=2)
    writes.status("o1", "committed", {"total": "1.00"})
    writes.product("sku-a", (3, 7), fields(4))
    writes.command_applied("sku-a", ["cmd-1"])
    writes.status("o2", "rejected", {"reason": "out_of_stock"})
    writes.status("o3", "committed", {})
    return writes


def test_products_go_first_then_applied_commands_then_statuses_in_chunks() -> None:
    calls = list(batch().calls())

    kinds = [call.args[0] if call.script is None else len(call.keys) for call in calls]
    # ZADD of the ids, one product call (1 key), SREM, statuses: 2 + 1 orders, 2 keys each
    assert kinds == ["ZADD", 1, "SREM", 4, 2]
    assert calls[0].args == ["ZADD", KEYS.product_ids(), 0, "sku-a"]
    assert calls[2].args == ["SREM", KEYS.product_pending("sku-a"), "cmd-1"]


def assert_written(redis: fakeredis.FakeRedis) -> None:
    assert redis.zrange(KEYS.product_ids(), 0, -1) == [b"sku-a"]
    product = decode_product("sku-a", redis.hgetall(KEYS.product("sku-a")))
    assert product is not None and product["available"] == 4
    assert redis.smembers(KEYS.product_pending("sku-a")) == {b"cmd-2"}
    statuses = {o: decode_order(redis.hgetall(KEYS.order(o))) for o in ("o1", "o2", "o3")}
    assert {o: s["status"] for o, s in statuses.items() if s} == {
        "o1": "committed",
        "o2": "rejected",
        "o3": "committed",
    }


def test_a_sync_sender_writes_the_batch() -> None:
    redis = fakeredis.FakeRedis()
    redis.sadd(KEYS.product_pending("sku-a"), "cmd-1", "cmd-2")

    assert Sender(redis).send(batch()) == 5
    assert_written(redis)


def test_an_async_sender_writes_the_same() -> None:
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)
    sync.sadd(KEYS.product_pending("sku-a"), "cmd-1", "cmd-2")

    async def run() -> int:
        client = fakeredis.FakeAsyncRedis(server=server)
        try:
            return await Sender(client).send_async(batch())
        finally:
            await client.aclose()

    assert asyncio.run(run()) == 5
    assert_written(sync)


def test_an_older_product_version_and_a_status_moving_back_are_dropped() -> None:
    redis = fakeredis.FakeRedis()
    sender = Sender(redis)
    newer = ReadModelWrites(KEYS)
    newer.product("sku-a", (3, 7), fields(4))
    newer.status("o1", "shipped", {})
    sender.send(newer)

    older = ReadModelWrites(KEYS)
    older.product("sku-a", (3, 6), fields(9))
    older.status("o1", "committed", {})
    sender.send(older)

    assert decode_product("sku-a", redis.hgetall(KEYS.product("sku-a")))["available"] == 4  # type: ignore[index]
    assert decode_order(redis.hgetall(KEYS.order("o1")))["status"] == "shipped"  # type: ignore[index]


def test_an_empty_batch_sends_nothing() -> None:
    assert Sender(fakeredis.FakeRedis()).send(ReadModelWrites(KEYS)) == 0


def test_single_writes_are_script_calls_on_the_owner_keys() -> None:
    redis = fakeredis.FakeRedis()
    readmodel = ReadModel(KEYS)

    redis.eval(*readmodel.set_status("o1", "accepted", {"customer_id": "c"}).eval_args())
    redis.eval(*readmodel.hold_pending("sku-a", "cmd-1", 60_000).eval_args())
    assert decode_order(redis.hgetall(KEYS.order("o1")))["status"] == "accepted"  # type: ignore[index]
    assert 0 < redis.pttl(KEYS.product_pending("sku-a")) <= 60_000

    assert redis.eval(*readmodel.forget_accepted("o1").eval_args()) == 1
    assert redis.exists(KEYS.order("o1")) == 0
