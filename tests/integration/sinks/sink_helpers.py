"""Helpers for the sink's integration tests: own database, topics, producing, waiting."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from orderstream.core.settings import REPO_ROOT, Settings
from schemas import codec
from schemas.common import event_id_for
from schemas.orders import CancelOrder, OrderCommitted, OrderItem
from schemas.topics import ALL_TOPICS
from sinks.consumer import SinkConsumer
from sinks.records import SOURCE_TOPICS
from sinks.wiring import make_sink_consumer

T = TypeVar("T")
PARTITIONS = 4


def wait_until(predicate: Callable[[], T], timeout_s: float = 60.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def _superuser_conn() -> psycopg.Connection[Any]:
    from orderstream.stack import database
    from orderstream.stack.config import StackConfig

    return database.superuser(StackConfig.from_env(os.environ))


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """A fresh database ``orderstream_test_<hex>`` owned by the stack's role; dropped after."""
    name = f"orderstream_test_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(base_url)
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    owner = url.username or "orderstream"
    try:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        admin: Callable[[], psycopg.Connection[Any]] = lambda: psycopg.connect(  # noqa: E731
            plain, autocommit=True
        )
    except psycopg.errors.InsufficientPrivilege:
        with _superuser_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        admin = _superuser_conn
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_topics(settings: Settings) -> list[str]:
    names = [settings.topics(n) for n in ALL_TOPICS]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(n, settings.partitions, 1) for n in names], timeout_ms=30000)
        # wait until every partition has a leader (fresh topics answer NotLeader at first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = admin.describe_topics(names)
            if all(
                len(d.get("partitions", [])) == settings.partitions
                and all(p.get("leader_id", -1) >= 0 for p in d["partitions"])
                for d in described
            ):
                break
            time.sleep(0.2)
    finally:
        admin.close()
    return names


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics(names, timeout_ms=30000)
    except Exception:  # best effort
        pass
    finally:
        admin.close()


def settings_for_test(base: Settings, namespace: str, database_url: str, **over: Any) -> Settings:
    return replace(
        base,
        topic_prefix=namespace,
        database_url=database_url,
        partitions=PARTITIONS,
        **over,
    )


class Producer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5
        )

    def send(self, topic: str, key: str | None, value: Any) -> None:
        data = value if isinstance(value, bytes) else codec.encode(value)
        self._producer.send(
            self._settings.topics(topic),
            key=None if key is None else key.encode(),
            value=data,
        )

    def flush(self) -> None:
        self._producer.flush(timeout=60)

    def close(self) -> None:
        self._producer.close(timeout=10)


def committed_order(order_id: str, lines: int = 2, customer_id: str = "c-1") -> OrderCommitted:
    items = tuple(
        OrderItem(line_no=n, product_id=f"sku-{n}", quantity=n + 1, unit_price=Decimal("3.25"))
        for n in range(lines)
    )
    return OrderCommitted(
        event_id=event_id_for(order_id, "committed"),
        order_id=order_id,
        customer_id=customer_id,
        items=items,
        total=sum((i.unit_price * i.quantity for i in items), Decimal("0")),
    )


def cancel_order(order_id: str) -> CancelOrder:
    return CancelOrder(event_id=event_id_for(order_id, "cancel"), order_id=order_id)


@contextmanager
def sink_in_thread(settings: Settings, with_read_model: bool = False) -> Iterator[SinkConsumer]:
    stop = threading.Event()
    runner, _sink, engine = make_sink_consumer(
        settings,
        group_id=f"{settings.topic_prefix}sink-{uuid.uuid4().hex[:6]}",
        with_read_model=with_read_model,
        stop=stop,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="sink", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(timeout=60)
        runner.close()
        engine.dispose()
    assert not errors, errors


def sink_subprocess(settings: Settings, log: Path, group_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "orderstream"),
            "sink",
            "--group-id",
            group_id,
            "--no-read-model",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@functools.cache
def _offsets_client(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap)


def end_offsets(settings: Settings, logical_topics: list[str]) -> dict[tuple[str, int], int]:
    tps = [
        TopicPartition(settings.topics(t), p)
        for t in logical_topics
        for p in range(settings.partitions)
    ]
    consumer = _offsets_client(settings.kafka_bootstrap)
    return {(tp.topic, tp.partition): o for tp, o in consumer.end_offsets(tps).items()}


def read_topic(
    settings: Settings, logical_topic: str, expected: int, timeout_s: float = 60
) -> list[Any]:
    """Every record of a topic from the beginning, until at least ``expected`` are read."""
    topic = settings.topics(logical_topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # drain what is left without waiting for more
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def count(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def statuses(engine: sa.Engine, prefix: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT order_id, status FROM orders WHERE order_id LIKE :p"),
            {"p": prefix + "%"},
        )
        return {r[0]: r[1] for r in rows}


def offsets_caught_up(engine: sa.Engine, settings: Settings) -> bool:
    """consumed_offsets equals the end of every source partition (nothing skipped)."""
    ends = {k: v for k, v in end_offsets(settings, list(SOURCE_TOPICS)).items() if v > 0}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT topic, partition, next_offset FROM consumed_offsets WHERE topic LIKE :p"
            ),
            {"p": settings.topic_prefix + "%"},
        )
        stored = {(t, p): o for t, p, o in rows}
    return all(stored.get(k) == v for k, v in ends.items())


def outbox_rows(engine: sa.Engine, topic: str) -> list[tuple[str, str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event_id, key, payload FROM outbox WHERE topic = :t ORDER BY id"),
            {"t": topic},
        )
        return [(r[0], r[1], r[2]) for r in rows]
