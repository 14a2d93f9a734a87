"""Kafka smoke: kafka-python (ingress) and aiokafka (Faust) talk to the same broker and agree on
the partition of every key -- the co-partitioning guarantee between ingress and agents."""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from orderstream.stack.testing import StackHandle

TIMEOUT_S = 60


def some_keys(n: int) -> list[bytes]:
    rng = random.Random(20251121)
    alphabet = string.ascii_letters + string.digits + "._-"
    keys = [f"SKU-{i}" for i in range(n // 2)]
    keys += ["".join(rng.choices(alphabet, k=rng.randint(1, 64))) for _ in range(n - len(keys))]
    return [k.encode() for k in keys]


def test_kafka_python_to_aiokafka(
    stack: StackHandle, topic_factory: Callable[..., str], group_id: Callable[[], str]
) -> None:
    topic = topic_factory("k2a", partitions=3)
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    producer.send(topic, key=b"P-1", value=b'{"hello": "aiokafka"}').get(timeout=TIMEOUT_S)
    producer.close()

    async def consume() -> tuple[bytes | None, bytes | None]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.settings.kafka_bootstrap,
            group_id=group_id(),
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
            return msg.key, msg.value
        finally:
            await consumer.stop()

    assert asyncio.run(consume()) == (b"P-1", b'{"hello": "aiokafka"}')


def test_aiokafka_to_kafka_python(
    stack: StackHandle, topic_factory: Callable[..., str], group_id: Callable[[], str]
) -> None:
    topic = topic_factory("a2k", partitions=3)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, key=b"P-2", value=b'{"hello": "kafka-python"}')
        finally:
            await producer.stop()

    asyncio.run(produce())
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.settings.kafka_bootstrap,
        group_id=group_id(),
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    try:
        received = []
        deadline = time.monotonic() + TIMEOUT_S
        while not received and time.monotonic() < deadline:
            received = [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()
    assert received == [(b"P-2", b'{"hello": "kafka-python"}')]


def test_both_clients_put_a_key_in_the_same_partition(
    stack: StackHandle, topic_factory: Callable[..., str]
) -> None:
    partitions = stack.settings.partitions
    topic = topic_factory("copart", partitions=partitions)
    keys = some_keys(400)

    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    futures = [producer.send(topic, key=k, value=b"kafka-python") for k in keys]
    by_kafka_python = [f.get(timeout=TIMEOUT_S).partition for f in futures]
    producer.close()

    async def produce() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = [await producer.send(topic, key=k, value=b"aiokafka") for k in keys]
            return [(await asyncio.wait_for(f, TIMEOUT_S)).partition for f in sent]
        finally:
            await producer.stop()

    by_aiokafka = asyncio.run(produce())
    assert by_kafka_python == by_aiokafka
    assert len(set(by_kafka_python)) == partitions  # the keys really spread over the topic
