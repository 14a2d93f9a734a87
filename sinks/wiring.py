"""Composition root of the sink and the relay: real dependencies from ``Settings``."""

from __future__ import annotations

import threading

import redis
from kafka import KafkaConsumer
from sqlalchemy import Engine, create_engine, make_url

from orderstream.core.readmodel import Keys
from orderstream.core.settings import Settings
from schemas.topics import ORDER_CANCELLATIONS
from sinks.consumer import SinkConsumer
from sinks.fetchpace import FetchPace
from sinks.lock import ShardLock
from sinks.postgres import PostgresSink
from sinks.readmodel import ReadModelWriter
from sinks.records import source_topics
from sinks.relay import RECONNECT_BACKOFF_MAX_MS

FETCH_MIN_BYTES = 32 * 1024
FETCH_MAX_WAIT_MS = 40


def consumer_name(settings: Settings) -> str:
    """The name under which consumed offsets are kept (topics carry the run's prefix)."""
    return f"{settings.app_id}.sink"


def default_group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}{settings.app_id}.sink"


def make_engine(settings: Settings, pool_size: int = 2) -> Engine:
    return create_engine(
        settings.database_url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def lock_name(settings: Settings, shard: int, shards: int) -> str:
    return f"{consumer_name(settings)}:{settings.topic_prefix}:{shard}/{shards}"


def libpq_url(database_url: str) -> str:
    """``postgresql+psycopg://...`` as a plain libpq URL (for psycopg.connect)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_read_model(settings: Settings) -> ReadModelWriter:
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    return ReadModelWriter(client, Keys(settings.topic_prefix))


def make_sink_consumer(
    settings: Settings,
    group_id: str | None = None,
    with_read_model: bool = True,
    stop: threading.Event | None = None,
    shard: int = 0,
    shards: int = 1,
    lock: ShardLock | None = None,
) -> tuple[SinkConsumer, PostgresSink, Engine]:
    """The sink for one shard; ``group_id`` is only used to report lag to Kafka. With
    ``lock`` (acquired), every batch transaction checks that it is still held."""
    engine = make_engine(settings)
    name = consumer_name(settings)
    sink = PostgresSink(
        engine,
        settings.topics,
        name,
        make_read_model(settings) if with_read_model else None,
        lock,
    )
    kafka = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id or default_group_id(settings),
        client_id="orderstream-sink",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.sink_batch_size,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # Let the broker gather a batch: a fetch returns once 32 KiB are ready or after
        # 40 ms (kafka-python's default returns on the first byte, so a busy sink sent a
        # fetch per trickle of records; building fetch requests over every partition was
        # a quarter of its CPU). 40 ms stays under the sink's own batch timeout.
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        # back to reading within a second of a broker's return (kafka-python's default
        # backs reconnects off up to 30 s)
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
    )
    runner = SinkConsumer(
        kafka,
        sink,
        engine,
        name,
        settings.sink_batch_size,
        settings.sink_batch_timeout_s,
        stop,
        cancellations_topic=settings.topics(ORDER_CANCELLATIONS),
        pace=FetchPace(FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES),
    )
    runner.assign(source_topics(settings.topics), shard, shards)
    return runner, sink, engine
