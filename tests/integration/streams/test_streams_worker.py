"""A real ``orderstream worker`` subprocess on the real Kafka (and Redis for the read model).

Assertions are the invariants: no oversell, nothing reserved twice, all or nothing.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from streams_harness import StreamsEnv, wait_for

from orderstream.readmodel import Keys, decode_product
from schemas import codec
from schemas import topics as names
from schemas.inventory import ReleaseLine
from schemas.orders import LineRejected, LineReserved


@pytest.fixture
def env(stack, namespace: str, tmp_path: Path) -> Iterator[StreamsEnv]:
    environment = StreamsEnv(stack.settings, namespace, tmp_path, partitions=4, hold_time_s=20)
    try:
        yield environment
    finally:
        environment.close()
        print(environment.worker_log())  # shown by pytest when the test failed


def reservations(env: StreamsEnv) -> list[LineReserved | LineRejected]:
    records = env.read(names.ORDER_RESERVATIONS, codec.reservation_stream_decoder)
    return [r for r in records if isinstance(r, LineReserved | LineRejected)]


def decided_lines(env: StreamsEnv) -> dict[tuple[str, int], set[str]]:
    """(order_id, line_no) -> the set of decisions seen (duplicates collapse)."""
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in reservations(env):
        seen[(r.order_id, r.line_no)].add(type(r).__name__)
    return seen


def reserved_units(env: StreamsEnv) -> Counter[str]:
    units: Counter[str] = Counter()
    lines = {(r.order_id, r.line_no): r for r in reservations(env) if isinstance(r, LineReserved)}
    for r in lines.values():
        units[r.product_id] += r.quantity
    return units


def product_available(env: StreamsEnv, client: redis.Redis, product_id: str) -> int | None:
    raw = client.hgetall(Keys(env.prefix).product(product_id))
    shown = decode_product(product_id, raw)  # type: ignore[arg-type]
    return None if shown is None else shown["available"]


def test_flash_sale_reserves_exactly_the_stock(env: StreamsEnv, redis_client: redis.Redis) -> None:
    stock, buyers = 40, 300
    env.start_worker()
    env.upsert("HOT", stock)
    env.flush()
    wait_for(lambda: product_available(env, redis_client, "HOT") == stock, 120, "catalog")

    def buy(first: int) -> None:
        for i in range(first, buyers, 6):
            env.order(f"o{i}", [("HOT", 1)], customer_id=f"c{i}")

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    env.flush()
    wait_for(lambda: len(decided_lines(env)) >= buyers, 120, "every line decided")
    decided = decided_lines(env)
    assert all(len(kinds) == 1 for kinds in decided.values())  # never both
    assert reserved_units(env) == {"HOT": stock}
    committed = env.read(names.ORDERS_COMMITTED, codec.order_event_decoder)
    wait_for(
        lambda: (
            len({e.order_id for e in env.read(names.ORDERS_REJECTED, codec.order_event_decoder)})
            == buyers - stock
        ),
        60,
        "rejections",
    )
    committed = env.read(names.ORDERS_COMMITTED, codec.order_event_decoder)
    assert len({e.order_id for e in committed}) == stock
    wait_for(lambda: product_available(env, redis_client, "HOT") == 0, 30, "read model")


def test_sigkill_midstream_reserves_nothing_twice(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    products = {f"P{n}": 150 for n in range(4)}
    orders = 2400
    env.start_worker()
    for product_id, stock in products.items():
        env.upsert(product_id, stock)
    env.flush()
    for product_id, stock in products.items():  # the catalog is applied before orders arrive
        wait_for(
            lambda p=product_id, s=stock: product_available(env, redis_client, p) == s,
            60,
            "catalog",
        )
    for i in range(orders):
        env.order(f"k{i}", [(f"P{i % 4}", 1 + i % 2)], customer_id=f"c{i}")
    env.flush()
    wait_for(lambda: len(decided_lines(env)) >= 200, 120, "the worker to be mid-stream")
    env.kill_worker()
    env.start_worker()
    wait_for(lambda: len(decided_lines(env)) >= orders, 180, "every line decided after restart")
    decided = decided_lines(env)
    assert all(len(kinds) == 1 for kinds in decided.values()), "a line got two decisions"
    assert reserved_units(env) == Counter({p: s for p, s in products.items()})  # demand > stock
    for product_id in products:
        wait_for(
            lambda p=product_id: product_available(env, redis_client, p) == 0, 30, "read model"
        )


def test_two_line_order_with_sold_out_second_product_releases_the_first(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    env.start_worker()
    env.upsert("A", 5)
    env.upsert("B", 0)
    env.flush()
    for product_id in "AB":
        wait_for(
            lambda p=product_id: product_available(env, redis_client, p) is not None, 120, "catalog"
        )
    env.order("two", [("A", 2), ("B", 1)])
    env.flush()

    def rejected() -> list[object]:
        return env.read(names.ORDERS_REJECTED, codec.order_event_decoder)

    wait_for(lambda: len(rejected()) >= 1, 60, "the order to be rejected")
    [event] = rejected()
    assert event.reason == "out_of_stock" and event.line_no == 1  # type: ignore[union-attr]
    releases = [
        c
        for c in env.read(names.INVENTORY_COMMANDS, codec.inventory_command_decoder)
        if isinstance(c, ReleaseLine)
    ]
    assert [(r.order_id, r.line_no, r.quantity) for r in releases] == [("two", 0, 2)]
    wait_for(lambda: product_available(env, redis_client, "A") == 5, 60, "A released")
    assert not env.read(names.ORDERS_COMMITTED, codec.order_event_decoder)
