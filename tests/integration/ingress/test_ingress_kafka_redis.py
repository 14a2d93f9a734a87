"""The ingress against real Kafka and Redis: partitioning, idempotency under concurrency,
the read model, long-polling, and 503 outcome-unknown when Kafka cannot take the order."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from falcon import testing
from falcon.util.sync import async_to_sync
from kafka import KafkaConsumer, TopicPartition

from ingress.app import create_app
from ingress.publisher import KafkaPublisher
from orderstream.core.readmodel import SET_STATUS_LUA, Keys, status_args
from orderstream.core.settings import Settings
from schemas import codec, topics
from schemas.orders import OrderLineRequested

PARTITIONS = 8


def auth(settings: Settings, **extra: str) -> dict[str, str]:
    """The storefront's headers, with a fresh Idempotency-Key unless ``extra`` has one."""
    return {
        "Authorization": f"Bearer {settings.storefront_key}",
        "Idempotency-Key": uuid.uuid4().hex,
        **extra,
    }


def consume(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (all partitions from the start), until ``expected`` are read
    and then one more quiet poll, or the timeout."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            got = [r for rs in batch.values() for r in rs]
            records += got
            if len(records) >= expected and not got:
                break
        return records
    finally:
        consumer.close()


def test_one_message_per_line_on_the_partition_aiokafka_computes(
    client: Any, settings: Settings
) -> None:
    products = ["sku-alpha", "sku-beta", "sku-gamma", "SKU.9_x-Y"]
    body = {"customer_id": "c-1", "items": [{"product_id": p, "quantity": 1} for p in products]}
    r = client.simulate_post("/v1/orders", json=body, headers=auth(settings))
    assert r.status_code == 202, r.text
    order_id = r.json["order_id"]

    records = consume(settings, settings.topics(topics.ORDER_REQUESTS), len(products))

    assert len(records) == len(products)
    partitioner = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    for record in records:
        line = codec.decode(record.value, OrderLineRequested)
        assert line.order_id == order_id
        assert record.key == line.product_id.encode()
        assert record.partition == partitioner(record.key, all_partitions, all_partitions)
    lines = [codec.decode(r.value, OrderLineRequested) for r in records]
    assert sorted(ln.line_no for ln in lines) == [0, 1, 2, 3]
    assert {ln.line_count for ln in lines} == {4}


def test_concurrent_attempts_with_one_key_make_one_order(client: Any, settings: Settings) -> None:
    body = {
        "customer_id": "c-2",
        "items": [{"product_id": "a-1", "quantity": 1}, {"product_id": "b-2", "quantity": 2}],
    }
    headers = auth(settings, **{"Idempotency-Key": f"retry-{uuid.uuid4().hex}"})

    async def post_all() -> list[Any]:
        # 12 requests in flight at once on the app's event loop, as under gunicorn
        async with testing.ASGIConductor(client.app) as conductor:
            return await asyncio.gather(
                *(
                    conductor.simulate_post("/v1/orders", json=body, headers=headers)
                    for _ in range(12)
                )
            )

    results = async_to_sync(post_all)
    assert {r.status_code for r in results} == {202}
    # a retry after the answers replays them
    late = client.simulate_post("/v1/orders", json=body, headers=headers)
    assert late.status_code == 202 and late.headers["Idempotent-Replayed"] == "true"
    order_ids = {r.json["order_id"] for r in [*results, late]}
    assert len(order_ids) == 1

    # attempts that found the claim in flight published the same lines again, under the
    # same order and event ids: the pipeline dedupes them
    records = consume(settings, settings.topics(topics.ORDER_REQUESTS), 2)
    lines = [codec.decode(r.value, OrderLineRequested) for r in records]
    order_id = order_ids.pop()
    assert {(ln.order_id, ln.line_no) for ln in lines} == {(order_id, 0), (order_id, 1)}
    assert len({(ln.line_no, ln.event_id) for ln in lines}) == 2


def test_read_model_and_long_poll_on_real_redis(
    client: Any, settings: Settings, redis_client: Any
) -> None:
    r = client.simulate_post(
        "/v1/orders",
        json={"customer_id": "c-3", "items": [{"product_id": "x", "quantity": 3}]},
        headers=auth(settings),
    )
    order_id = r.json["order_id"]
    read = client.simulate_get(f"/v1/orders/{order_id}", headers=auth(settings))
    assert read.json["status"] == "accepted"
    assert read.json["items"] == [{"product_id": "x", "quantity": 3, "unit_price": None}]

    keys = Keys(settings.topic_prefix)
    committed = threading.Timer(
        0.5,
        lambda: redis_client.eval(
            SET_STATUS_LUA,
            2,
            keys.order(order_id),
            keys.order_channel(order_id),
            *status_args("committed", {}),
        ),
    )
    committed.start()
    try:
        polled = client.simulate_get(
            f"/v1/orders/{order_id}", params={"wait": "25"}, headers=auth(settings)
        )
    finally:
        committed.join(timeout=10)
    assert polled.json["status"] == "committed"


def test_kafka_cannot_take_the_order_is_503_outcome_unknown_and_a_retry_names_it_again(
    stack: Any, redis_client: Any, ingress_redis: Any
) -> None:
    # a prefix whose topics do not exist (auto creation is off): nothing can be acknowledged
    settings = replace(stack.settings_for(f"missing{uuid.uuid4().hex[:6]}."), publish_timeout_s=2.0)
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    try:
        client = testing.TestClient(create_app(settings, publisher, ingress_redis))
        headers = auth(settings, **{"Idempotency-Key": "k-503"})
        body = {"customer_id": "c-4", "items": [{"product_id": "x", "quantity": 1}]}
        first = client.simulate_post("/v1/orders", json=body, headers=headers)
        again = client.simulate_post("/v1/orders", json=body, headers=headers)
    finally:
        async_to_sync(publisher.close)
        for key in redis_client.scan_iter(match=f"{settings.topic_prefix}*"):
            redis_client.delete(key)
    assert first.status_code == 503
    assert first.headers["Retry-After"]
    assert first.headers["Content-Type"] == "application/problem+json"
    assert first.json["type"].endswith("outcome-unknown")
    assert first.headers["Location"] == f"/v1/orders/{first.json['order_id']}"
    # the retry takes the same order over (and fails the same way): never a second order
    assert again.status_code == 503
    assert again.json["order_id"] == first.json["order_id"]
