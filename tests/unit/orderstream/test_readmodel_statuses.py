"""SET_STATUSES_LUA: many orders' statuses in one call, each as SET_STATUS_LUA would."""

from __future__ import annotations

import fakeredis

from orderstream.core.readmodel import (
    SET_STATUS_LUA,
    SET_STATUSES_LUA,
    Keys,
    decode_order,
    status_args,
    status_calls,
)


def test_a_batch_moves_each_order_forward_only_and_publishes_each_change() -> None:
    redis = fakeredis.FakeRedis()
    keys = Keys("t:")
    redis.eval(
        SET_STATUS_LUA, 2, keys.order("b"), keys.order_channel("b"), *status_args("shipped", {})
    )
    pubsub = redis.pubsub()
    pubsub.subscribe(*(keys.order_channel(o) for o in "abc"))
    updates = [
        ("a", "committed", {"total": "2.00", "items": [{"product_id": "p", "quantity": 1}]}),
        ("b", "committed", {}),  # behind: b is shipped already
        ("c", "rejected", {"reason": "out_of_stock"}),
        ("a", "shipped", {}),
    ]
    script = redis.register_script(SET_STATUSES_LUA)
    written = [script(keys=k, args=a) for k, a in status_calls(keys, updates, chunk=3)]

    assert written == [2, 1]  # two calls (3 + 1 orders); b did not move back
    a = decode_order(redis.hgetall(keys.order("a")))
    assert a is not None and a["status"] == "shipped" and a["total"] == "2.00"
    assert a["items"] == [{"product_id": "p", "quantity": 1}]
    assert decode_order(redis.hgetall(keys.order("b")))["status"] == "shipped"  # type: ignore[index]
    c = decode_order(redis.hgetall(keys.order("c")))
    assert c is not None and (c["status"], c["reason"]) == ("rejected", "out_of_stock")
    published = []
    while (message := pubsub.get_message(timeout=0.1)) is not None:
        if message["type"] == "message":
            published.append((message["channel"].decode()[-1], message["data"].decode()))
    assert published == [("a", "committed"), ("c", "rejected"), ("a", "shipped")]


def test_a_final_order_is_kept_a_day_and_an_order_on_its_way_a_week() -> None:
    redis = fakeredis.FakeRedis()
    keys = Keys("t:")
    script = redis.register_script(SET_STATUSES_LUA)
    for status in ("accepted", "committed"):
        for k, a in status_calls(keys, [("o", status, {})]):
            script(keys=k, args=a)
        assert redis.ttl(keys.order("o")) > 6 * 24 * 3600
    for k, a in status_calls(keys, [("o", "shipped", {}), ("o", "committed", {})]):
        script(keys=k, args=a)  # a late "committed" changes neither status nor expiry
    assert 23 * 3600 < redis.ttl(keys.order("o")) <= 24 * 3600
    assert decode_order(redis.hgetall(keys.order("o")))["status"] == "shipped"  # type: ignore[index]
