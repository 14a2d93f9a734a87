"""GET orders (Redis read model, PostgreSQL fallback, long-poll) and products."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import fakeredis
import pytest
from ingress_fakes import STORE, Harness, order_body

from orderstream.core.readmodel import SET_STATUS_LUA, Keys, product_fields, status_args


def set_status(h: Harness, order_id: str, status: str, **fields: object) -> None:
    keys = Keys()
    h.redis.eval(
        SET_STATUS_LUA,
        2,
        keys.order(order_id),
        keys.order_channel(order_id),
        *status_args(status, fields),
    )


def test_a_placed_order_is_readable_at_once(h: Harness) -> None:
    order_id = h.post_order(order_body(("sku-a", 2))).json["order_id"]
    r = h.client.simulate_get(f"/v1/orders/{order_id}", headers=STORE)
    assert r.status_code == 200
    assert r.json == {
        "order_id": order_id,
        "status": "accepted",
        "items": [{"product_id": "sku-a", "quantity": 2, "unit_price": None}],
    }


def test_committed_order_shows_prices_total_and_reason_when_present(h: Harness) -> None:
    order_id = uuid.uuid4().hex
    set_status(
        h,
        order_id,
        "rejected",
        items=[{"product_id": "a", "quantity": 1, "unit_price": "2.50"}],
        total="2.50",
        reason="out_of_stock",
    )
    r = h.client.simulate_get(f"/v1/orders/{order_id}", headers=STORE)
    assert r.json == {
        "order_id": order_id,
        "status": "rejected",
        "reason": "out_of_stock",
        "items": [{"product_id": "a", "quantity": 1, "unit_price": "2.50"}],
        "total": "2.50",
    }


def test_unknown_order_is_404(h: Harness) -> None:
    r = h.client.simulate_get(f"/v1/orders/{uuid.uuid4().hex}", headers=STORE)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/problem+json"


def test_a_non_uuid_order_id_is_404(h: Harness) -> None:
    assert h.client.simulate_get("/v1/orders/not-an-id", headers=STORE).status_code == 404


def test_falls_back_to_postgres_when_redis_has_no_entry(h: Harness) -> None:
    order_id = uuid.uuid4().hex
    h.fallback.orders[order_id] = {
        "status": "shipped",
        "reason": None,
        "total": "5.00",
        "items": [{"product_id": "a", "quantity": 2, "unit_price": "2.50"}],
    }
    r = h.client.simulate_get(f"/v1/orders/{order_id}", headers=STORE)
    assert r.status_code == 200
    assert r.json["status"] == "shipped"
    assert r.json["total"] == "5.00"


def test_wait_must_be_within_bounds(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]
    for bad in ("-1", "31", "abc", "nan"):
        r = h.client.simulate_get(f"/v1/orders/{order_id}", params={"wait": bad}, headers=STORE)
        assert r.status_code == 422, bad
        assert r.json["errors"][0]["field"] == "query:wait"


def test_wait_returns_at_once_for_a_terminal_order(h: Harness) -> None:
    order_id = uuid.uuid4().hex
    set_status(h, order_id, "shipped", items=[])
    r = h.client.simulate_get(f"/v1/orders/{order_id}", params={"wait": "30"}, headers=STORE)
    assert r.json["status"] == "shipped"


def test_wait_returns_the_new_status_when_it_changes(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]
    changer = threading.Timer(0.3, set_status, args=(h, order_id, "committed"))
    changer.start()
    started = time.monotonic()
    try:
        r = h.client.simulate_get(f"/v1/orders/{order_id}", params={"wait": "20"}, headers=STORE)
    finally:
        changer.join(timeout=10)
    assert r.status_code == 200
    assert r.json["status"] == "committed"
    assert time.monotonic() - started < 4  # heard as it was published, before a re-check (5 s)


def test_wait_without_a_change_returns_the_current_status(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]
    r = h.client.simulate_get(f"/v1/orders/{order_id}", params={"wait": "0.2"}, headers=STORE)
    assert r.json["status"] == "accepted"


def put_product(h: Harness, product_id: str, **kw: object) -> None:
    fields = {
        "name": "Mug",
        "price": "9.50",
        "available": 3,
        "active": True,
        "limit_per_customer": None,
    }
    fields.update(kw)
    keys = Keys()
    h.redis.hset(keys.product(product_id), mapping=product_fields(**fields))  # type: ignore[arg-type]
    h.redis.zadd(keys.product_ids(), {product_id: 0})


def test_products_come_from_the_read_model(h: Harness) -> None:
    put_product(h, "mug-1")
    put_product(h, "cap-2", name="Cap", active=False, available=0)
    listed = h.client.simulate_get("/v1/products")
    one = h.client.simulate_get("/v1/products/mug-1")
    assert [p["product_id"] for p in listed.json["items"]] == ["cap-2", "mug-1"]
    assert one.json == {
        "product_id": "mug-1",
        "name": "Mug",
        "description": None,
        "price": "9.50",
        "available": 3,
        "active": True,
        "limit_per_customer": None,
    }


def test_a_product_shows_its_description_in_the_list_and_alone(h: Harness) -> None:
    text = "Stoneware, 350 ml.\nDishwasher safe: ünïcode too."
    put_product(h, "mug-1", description=text)
    put_product(h, "cap-2", name="Cap")
    listed = {p["product_id"]: p for p in h.client.simulate_get("/v1/products").json["items"]}
    assert listed["mug-1"]["description"] == text
    assert listed["cap-2"]["description"] is None
    assert h.client.simulate_get("/v1/products/mug-1").json["description"] == text


def test_unknown_product_is_404_and_a_bad_id_is_422(h: Harness) -> None:
    assert h.client.simulate_get("/v1/products/nope").status_code == 404
    assert h.client.simulate_get("/v1/products/bad%20id").status_code == 422


def test_products_fall_back_to_postgres(h: Harness) -> None:
    row = {
        "product_id": "pg-1",
        "name": "PG",
        "price": "1.00",
        "available": 0,
        "active": True,
        "limit_per_customer": None,
    }
    h.fallback.product_rows.append(row)
    assert h.client.simulate_get("/v1/products/pg-1").json == row
    assert h.client.simulate_get("/v1/products").json == {"items": [row], "next": None}


class CountingSubscribes:
    """Wraps a client: counts the SUBSCRIBE commands its pub/sub connection sends."""

    def __init__(self, redis: object) -> None:
        self._redis = redis
        self.subscribes: list[tuple[str, ...]] = []
        self.pubsub_: object = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._redis, name)

    def pubsub(self) -> object:
        pubsub = self._redis.pubsub()  # type: ignore[attr-defined]
        subscribe = pubsub.subscribe

        def counting(*channels: str) -> object:
            self.subscribes.append(channels)
            return subscribe(*channels)

        pubsub.subscribe = counting
        self.pubsub_ = pubsub
        return pubsub


async def _follow(waiter: Any, reader: Any, h: Harness, order_id: str, seen: str, new: str) -> str:
    asyncio.get_running_loop().call_later(0.3, set_status, h, order_id, new)
    found = await waiter.wait_for_change(reader, order_id, seen, 20)
    return str(found["status"])


def _waiter(h: Harness, linger_s: float) -> tuple[Any, Any, CountingSubscribes]:
    from ingress.readside import NoFallback, OrderReader, StatusWaiter

    redis = CountingSubscribes(fakeredis.FakeAsyncRedis(server=h.server))
    return (
        StatusWaiter(redis, Keys(), linger_s=linger_s),
        OrderReader(redis, Keys(), NoFallback()),
        redis,
    )


def test_asking_again_after_a_change_reuses_the_subscription(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]

    async def main() -> None:
        waiter, reader, redis = _waiter(h, linger_s=60)
        assert await _follow(waiter, reader, h, order_id, "accepted", "committed") == "committed"
        assert await _follow(waiter, reader, h, order_id, "committed", "shipped") == "shipped"
        assert redis.subscribes == [(Keys().order_channel(order_id),)]
        await waiter.close()

    asyncio.run(main())


def test_a_channel_nobody_waits_on_is_unsubscribed_after_the_linger_time(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]

    async def main() -> None:
        waiter, reader, redis = _waiter(h, linger_s=0.1)
        assert await _follow(waiter, reader, h, order_id, "accepted", "committed") == "committed"
        for _ in range(200):  # the sender drops it within linger_s (0.1 s); 10 s at most
            if not redis.pubsub_.channels:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert not redis.pubsub_.channels  # type: ignore[attr-defined]
        # and a new wait subscribes again
        assert await _follow(waiter, reader, h, order_id, "committed", "shipped") == "shipped"
        assert len(redis.subscribes) == 2
        await waiter.close()

    asyncio.run(main())


class CountingReads:
    """Wraps an OrderReader: counts the reads of the order."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.reads = 0

    async def get(self, order_id: str) -> object:
        self.reads += 1
        return await self._reader.get(order_id)


def test_a_published_status_that_is_not_awaited_is_not_read(h: Harness) -> None:
    """Waiting for a final status: ``committed`` passes by with no read of the order."""
    from schemas.orders import TERMINAL_STATUSES

    order_id = h.post_order(order_body(("a", 1))).json["order_id"]

    async def main() -> None:
        waiter, reader, _ = _waiter(h, linger_s=60)
        counting = CountingReads(reader)
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, set_status, h, order_id, "committed")
        loop.call_later(0.6, set_status, h, order_id, "shipped")
        found = await waiter.wait_until(counting, order_id, TERMINAL_STATUSES.__contains__, 20)
        assert found["status"] == "shipped"
        assert counting.reads == 2  # once subscribed, then on "shipped"
        await waiter.close()

    asyncio.run(main())


def test_a_wait_that_times_out_after_a_skipped_status_reads_it(h: Harness) -> None:
    from schemas.orders import TERMINAL_STATUSES

    order_id = h.post_order(order_body(("a", 1))).json["order_id"]

    async def main() -> None:
        waiter, reader, _ = _waiter(h, linger_s=60)
        asyncio.get_running_loop().call_later(0.2, set_status, h, order_id, "committed")
        found = await waiter.wait_until(reader, order_id, TERMINAL_STATUSES.__contains__, 1.0)
        assert found["status"] == "committed"  # not the "accepted" read before it
        await waiter.close()

    asyncio.run(main())


def test_products_are_listed_a_page_at_a_time_in_id_order(h: Harness) -> None:
    for n in range(5):
        put_product(h, f"p-{n}")

    first = h.client.simulate_get("/v1/products", params={"limit": 2}).json
    second = h.client.simulate_get("/v1/products", params={"limit": 2, "after": first["next"]})
    last = h.client.simulate_get("/v1/products", params={"limit": 2, "after": "p-3"}).json

    assert [p["product_id"] for p in first["items"]] == ["p-0", "p-1"]
    assert first["next"] == "p-1"
    assert [p["product_id"] for p in second.json["items"]] == ["p-2", "p-3"]
    assert ([p["product_id"] for p in last["items"]], last["next"]) == (["p-4"], None)
    h.fallback.product_rows.append({"product_id": "zz"})  # only for a read model lost
    past = h.client.simulate_get("/v1/products", params={"after": "p-4"}).json
    assert past == {"items": [], "next": None}
    assert h.client.simulate_get("/v1/products").json["next"] is None  # 5 <= the default 100


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "query:limit"),
        ({"limit": 1001}, "query:limit"),
        ({"limit": "x"}, "query:limit"),
        ({"after": "a b"}, "query:after"),
    ],
)
def test_a_bad_page_is_422_naming_the_parameter(
    h: Harness, query: dict[str, object], field: str
) -> None:
    r = h.client.simulate_get("/v1/products", params=query)
    assert r.status_code == 422
    assert [e["field"] for e in r.json["errors"]] == [field]


def test_the_postgres_fallback_is_paged_too(h: Harness) -> None:
    for n in range(3):
        h.fallback.product_rows.append(
            {
                "product_id": f"pg-{n}",
                "name": "PG",
                "price": "1.00",
                "available": 0,
                "active": True,
                "limit_per_customer": None,
            }
        )
    page = h.client.simulate_get("/v1/products", params={"limit": 2}).json
    assert ([p["product_id"] for p in page["items"]], page["next"]) == (["pg-0", "pg-1"], "pg-1")
