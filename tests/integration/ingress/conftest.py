"""Integration fixtures: the ingress app on real Kafka (namespaced topics) and Redis.

falcon.testing runs the ASGI app on one module-wide event loop; the asyncio clients are
closed on it too (``async_to_sync``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from falcon import testing
from falcon.util.sync import async_to_sync
from kafka.admin import KafkaAdminClient, NewTopic

from ingress.app import create_app
from ingress.publisher import KafkaPublisher
from ingress.redisbatch import BatchedRedis
from ingress.redisconn import connect
from ingress.respwire import RespWire
from orderstream.core.settings import Settings
from schemas import topics

PARTITIONS = 8


@pytest.fixture
def settings(stack: Any, namespace: str) -> Iterator[Settings]:
    s = replace(stack.settings_for(namespace), partitions=PARTITIONS, publish_timeout_s=10.0)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    names = [
        s.topics(t)
        for t in (topics.ORDER_REQUESTS, topics.ORDER_CANCELLATIONS, topics.INVENTORY_COMMANDS)
    ]
    admin.create_topics(
        [NewTopic(n, PARTITIONS, 1) for n in names], timeout_ms=30000, wait_for_metadata=True
    )
    try:
        yield s
    finally:
        admin.delete_topics(names, timeout_ms=30000)
        admin.close()


@pytest.fixture
def ingress_redis(stack: Any) -> Iterator[Any]:
    """The Redis client the ingress uses in production (``ingress.redisconn.connect``, with
    the hot commands batched by ``ingress.redisbatch.BatchedRedis`` over
    ``ingress.respwire.RespWire``)."""
    url = stack.settings.redis_url
    batched = BatchedRedis(
        connect(url, socket_timeout=5, health_check_interval=30), wire=RespWire(url)
    )
    try:
        yield batched
    finally:
        async_to_sync(batched.aclose)  # on the loop falcon.testing runs the app on


@pytest.fixture
def client(settings: Settings, ingress_redis: Any) -> Iterator[testing.TestClient]:
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    try:
        yield testing.TestClient(create_app(settings, publisher, ingress_redis))
    finally:
        async_to_sync(publisher.close)
