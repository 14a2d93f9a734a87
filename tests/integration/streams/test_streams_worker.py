"""A real ``orderstream worker`` subprocess on the real Kafka (and Redis for the read model).

Assertions are the invariants: no oversell, nothing reserved twice, all or nothing.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import rocksdict
from kafka import KafkaConsumer, TopicPartition
from streams_harness import STUCK_ON_FIRST_ORDER, StreamsEnv, wait_for

from orderstream.core.readmodel import Keys, decode_product
from orderstream.topicread import read_to_end
from schemas import codec
from schemas import topics as names
from schemas.deadletter import DeadLetter, dead_letter_event_id
from schemas.inventory import ReleaseLine
from streams.records import PruneMark, decode_stock, line_key


class _Raw:
    """A decoder for ``StreamsEnv.read`` that keeps the bytes."""

    @staticmethod
    def decode(value: bytes) -> bytes:
        return value


_RAW = _Raw()


@pytest.fixture
def env(stack, namespace: str, tmp_path: Path) -> Iterator[StreamsEnv]:
    environment = StreamsEnv(stack.settings, namespace, tmp_path, partitions=4, hold_time_s=20)
    try:
        yield environment
    finally:
        environment.close()
        print(environment.worker_log())  # shown by pytest when the test failed


def order_decisions(env: StreamsEnv) -> dict[str, set[str]]:
    """order_id -> the decisions seen (committed, rejected); a replay's duplicates collapse.

    Single-line orders are decided by reserve_stock itself, so for them an order's decision
    is its line's decision."""
    seen: dict[str, set[str]] = defaultdict(set)
    for topic in (names.ORDERS_COMMITTED, names.ORDERS_REJECTED):
        for event in env.read(topic, codec.order_event_decoder):
            seen[event.order_id].add(type(event).__name__)
    return seen


def wait_all_decided(env: StreamsEnv, orders: int, timeout: float, when: str) -> None:
    wait_for(
        lambda: len(order_decisions(env)) >= orders,
        timeout,
        f"every order decided {when}",
        progress=lambda: f"{len(order_decisions(env))} of {orders} decided, {env.runs} runs",
    )


def committed_units(env: StreamsEnv) -> Counter[str]:
    """Units per product over the distinct committed orders (line by line)."""
    units: Counter[str] = Counter()
    orders = {e.order_id: e for e in env.read(names.ORDERS_COMMITTED, codec.order_event_decoder)}
    for order in orders.values():
        for item in order.items:
            units[item.product_id] += item.quantity
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
    wait_for(lambda: len(order_decisions(env)) >= buyers, 120, "every order decided")
    decided = order_decisions(env)
    assert len(decided) == buyers
    assert all(len(kinds) == 1 for kinds in decided.values())  # never both
    assert committed_units(env) == {"HOT": stock}
    kinds = Counter(kind for found in decided.values() for kind in found)
    assert kinds == {"OrderCommitted": stock, "OrderRejected": buyers - stock}
    rejected = env.read(names.ORDERS_REJECTED, codec.order_event_decoder)
    assert {e.reason for e in rejected} == {"out_of_stock"}
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

    def send(numbers: range) -> None:
        for i in numbers:
            env.order(f"k{i}", [(f"P{i % 4}", 1 + i % 2)], customer_id=f"c{i}")
        env.flush()

    # half before the kill, half while the worker is down: the successor always has work,
    # however fast the first worker got through its half
    send(range(orders // 2))
    wait_for(lambda: len(order_decisions(env)) >= 200, 120, "the worker to be mid-stream")
    env.kill_worker()
    send(range(orders // 2, orders))
    # restarted if its stall watchdog (streams.watchdog) stops it, as the supervisor does
    env.start_worker(restart=True)
    # the killed member's session (20 s) expires before the group rebalances
    wait_all_decided(env, orders, 300, "after restart")
    decided = order_decisions(env)
    assert len(decided) == orders
    assert all(len(kinds) == 1 for kinds in decided.values()), "an order got two decisions"
    assert committed_units(env) == Counter(products)  # demand > stock: all sold, none twice
    for product_id in products:
        wait_for(
            lambda p=product_id: product_available(env, redis_client, p) == 0, 30, "read model"
        )


def test_a_stuck_worker_is_stopped_by_its_watchdog_and_its_successor_decides(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    stock, orders = 30, 80
    env.settings = replace(env.settings, worker_stall_s=8.0)
    env.start_worker(fault=STUCK_ON_FIRST_ORDER, restart=True)
    env.upsert("S", stock)
    env.flush()
    wait_for(lambda: product_available(env, redis_client, "S") == stock, 120, "catalog")
    for i in range(orders):
        env.order(f"s{i}", [("S", 1)], customer_id=f"c{i}")
    env.flush()

    wait_all_decided(env, orders, 180, "by the successor")
    assert "watchdog: worker stalled" in (env.tmp / "worker-1.log").read_text(errors="replace")
    assert env.runs >= 2
    decided = order_decisions(env)
    assert all(len(kinds) == 1 for kinds in decided.values()), "an order got two decisions"
    assert committed_units(env) == Counter({"S": stock})
    wait_for(lambda: product_available(env, redis_client, "S") == 0, 30, "read model")


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


def test_old_line_records_are_pruned_and_a_restarted_worker_still_decides_exactly(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    stock = 30
    env.settings = replace(env.settings, stock_line_retention_s=2.0, stock_prune_pass_s=0.5)
    env.start_worker()
    env.upsert("PR", stock)
    env.flush()
    wait_for(lambda: product_available(env, redis_client, "PR") == stock, 120, "catalog")
    changelog = f"{env.app_id}-stock_by_product-changelog"

    def wave(name: str, count: int) -> list[bytes]:
        for i in range(count):
            env.order(f"{name}{i}", [("PR", 1)], customer_id=f"{name}-c{i}")
        env.flush()
        return [line_key(f"{name}{i}", 0) for i in range(count)]

    def latest() -> dict[bytes, bytes | None]:
        return {r.key: r.value for r in read_to_end(env.settings.kafka_bootstrap, changelog)}

    first = wave("a", 20)
    wait_all_decided(env, 20, 60, "first wave")
    assert all(latest().get(key) is not None for key in first)
    time.sleep(2.5)  # the first wave's lines pass the retention
    second = wave("b", 20)  # the second wave's batches prune them
    wait_for(
        lambda: all(key in (log := latest()) and log[key] is None for key in first),
        60,
        "the first wave's line records deleted (tombstones on the changelog)",
    )
    log = latest()
    marks = [decode_stock(v) for k, v in log.items() if k.startswith(b"W\x1f") and v]
    assert marks and all(isinstance(m, PruneMark) and m.request_offset >= 19 for m in marks)
    assert any(log.get(key) is not None for key in second)  # young lines stay

    # a worker restored from the pruned changelog (its RocksDB wiped: tombstones and the
    # mark come back from Kafka) goes on deciding exactly. The replay of a pruned request
    # is property-tested (test_line_pruning): its offsets were committed long before.
    env.kill_worker()
    shutil.rmtree(Path(env.settings.data_dir) / "0")
    wave("c", 20)
    env.start_worker(restart=True)
    wait_all_decided(env, 60, 300, "after restart")
    decided = order_decisions(env)
    assert all(len(kinds) == 1 for kinds in decided.values()), "an order got two decisions"
    assert committed_units(env) == Counter({"PR": stock})
    wait_for(lambda: product_available(env, redis_client, "PR") == 0, 30, "read model")


def _roll_back_table_stores(data_dir: Path, snapshot: Path, changelog_ends: dict[str, int]) -> None:
    """Put an older copy of the worker's table stores in place, each partition's persisted
    changelog offset set to its changelog's end: partitions that believe they are restored
    while they miss the latest writes (what a restore that stops short leaves).
    ``changelog_ends``: ``{"<table>-<partition>": end offset}``."""
    shutil.rmtree(data_dir)
    shutil.copytree(snapshot, data_dir)
    for name, end in changelog_ends.items():
        [path] = data_dir.glob(f"**/{name}.db")
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        try:
            db[b"__faust\0offset__"] = str(end - 1).encode()
        finally:
            db.close()


def _changelog_ends(env: StreamsEnv, tables: tuple[str, ...]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=env.settings.kafka_bootstrap)
    try:
        ends = {}
        for table in tables:
            topic = f"{env.app_id}-{table}-changelog"
            parts = [TopicPartition(topic, p) for p in range(env.settings.partitions)]
            for tp, end in consumer.end_offsets(parts).items():
                if end:
                    ends[f"{table}-{tp.partition}"] = end
        return ends
    finally:
        consumer.close()


def test_table_partitions_older_than_their_changelog_are_restored_before_they_decide(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    stock = 100
    env.start_worker()
    for product_id, units in (("ST", stock), ("X", 1000), ("Y", 1000)):
        env.upsert(product_id, units)
    env.flush()
    for product_id in ("ST", "X", "Y"):
        wait_for(
            lambda p=product_id: product_available(env, redis_client, p) is not None, 120, "catalog"
        )

    def wave(name: str, count: int) -> None:
        """``count`` one-unit orders of ST, and 10 two-line orders (the settler's part)."""
        for i in range(count):
            env.order(f"{name}{i}", [("ST", 1)], customer_id=f"{name}-c{i}")
        for i in range(10):
            env.order(f"{name}-xy{i}", [("X", 1), ("Y", 1)], customer_id=f"{name}-xy{i}")
        env.flush()

    wave("a", 30)
    wait_all_decided(env, 40, 60, "first wave")
    env.stop_worker()
    data_dir = Path(env.settings.data_dir) / "0"
    snapshot = env.tmp / "stores-after-first-wave"
    shutil.copytree(data_dir, snapshot)

    env.start_worker()
    wave("b", 30)
    wait_all_decided(env, 80, 120, "second wave")
    env.stop_worker()
    ends = _changelog_ends(env, ("stock_by_product", "pending_orders"))
    _roll_back_table_stores(data_dir, snapshot, ends)

    # 60 more buyers of ST for the 40 units left: decided on the rolled-back store, 70 would
    # look available and ST would be oversold by 20
    env.start_worker(restart=True)
    wave("c", 60)
    wait_all_decided(env, 150, 300, "third wave")
    decided = order_decisions(env)
    assert all(len(kinds) == 1 for kinds in decided.values()), "an order got two decisions"
    assert committed_units(env) == Counter({"ST": stock, "X": 30, "Y": 30})
    log = env.worker_log()
    for table in ("stock_by_product", "pending_orders"):
        assert f"table partition behind its changelog: {table}" in log
    wait_for(lambda: product_available(env, redis_client, "ST") == 0, 30, "read model")


def test_undecodable_records_of_both_agents_are_dead_lettered_as_envelopes(
    env: StreamsEnv, redis_client: redis.Redis
) -> None:
    """reserve_stock and settle_orders send what they cannot decode to orders.deadletter in
    the shared envelope (schemas.deadletter), and go on deciding what follows."""
    env.start_worker()
    env.upsert("A", 5)
    env.flush()
    wait_for(lambda: product_available(env, redis_client, "A") is not None, 120, "catalog")
    requests = env.settings.topics(names.ORDER_REQUESTS)
    reservations = env.settings.topics(names.ORDER_RESERVATIONS)
    sent = {
        requests: env.producer.send(requests, key=b"A", value=b"\xffnot json").get(30),
        reservations: env.producer.send(reservations, key=b"o-junk", value=b"{}").get(30),
    }
    env.order("after", [("A", 1)])
    env.flush()

    def letters() -> dict[str, DeadLetter]:
        found = env.read(names.DEAD_LETTER, _RAW)
        return {d.source_topic: d for d in map(DeadLetter.parse, found)}

    wait_for(lambda: len(letters()) >= 2, 60, "two dead letters")
    wait_all_decided(env, 1, 60, "after the poison records")
    found = letters()
    assert set(found) == {requests, reservations}
    for topic, metadata in sent.items():
        letter = found[topic]
        assert (letter.partition, letter.offset) == (metadata.partition, metadata.offset)
        assert letter.event_id == dead_letter_event_id(topic, metadata.partition, metadata.offset)
        assert letter.reason.startswith("cannot decode: ")
    assert found[requests].consumer == f"{env.app_id}:reserve_stock"
    assert found[reservations].consumer == f"{env.app_id}:settle_orders"
    assert (found[requests].key, found[requests].value) == (b"A", b"\xffnot json")
    assert (found[reservations].key, found[reservations].value) == (b"o-junk", b"{}")
