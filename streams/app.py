"""The one Faust app: ``create_app(settings)``. Declarations in order: app, topics,
tables, agents. Do NOT enable exactly_once (open Faust bugs); effects are idempotent."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from orderstream.core.readmodel import Keys
from orderstream.core.redispack import connection_options
from orderstream.core.settings import Settings
from streams import health
from streams.agents import StreamAgents, register_agents
from streams.faustconsumer import WorkerConsumer
from streams.faustinternals import AppWithConsumer, OrderedTableManager, require_supported_faust
from streams.metrics import WorkerMetrics
from streams.readmodel import ReadModelWriter
from streams.tables import StreamTables, declare_tables
from streams.topics import StreamTopics, declare_topics

WEB_PORT_BASE = 16066
SESSION_TIMEOUT_S = 20.0


class StreamApp(AppWithConsumer):
    """A faust.App with the workers' consumer that also carries what was declared on it
    (for tests and tools)."""

    stream_topics: StreamTopics
    stream_tables: StreamTables
    stream_agents: StreamAgents
    readmodel: ReadModelWriter
    metrics: WorkerMetrics
    consumer_class = WorkerConsumer


def new_app(
    settings: Settings,
    *,
    worker_index: int = 0,
    web_port: int | None = None,
    web_host: str = "127.0.0.1",
    store: str = "rocksdb://",  # faust-streaming drives RocksDB through rocksdict
    broker: str | None = None,
) -> StreamApp:
    """The app with the workers' options, nothing declared on it yet. Refuses
    (``UnsupportedFaustVersion``) on a faust-streaming other than the one
    ``streams.faustinternals`` is written against."""
    require_supported_faust()
    return StreamApp(
        settings.app_id,
        broker=broker or f"kafka://{settings.kafka_bootstrap}",
        store=store,
        datadir=str(Path(settings.data_dir) / str(worker_index)),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        web_host=web_host,
        web_bind=web_host,
        web_port=web_port or WEB_PORT_BASE + worker_index,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        broker_max_poll_records=2000,
        # WorkerConsumer fetches only while every buffer is at most half full; half plus
        # one poll (2000) stays under the 80% at which Faust pauses a partition
        stream_buffer_maxsize=8192,
        table_standby_replicas=settings.standby_replicas,
        # A worker that dies without leaving the group (SIGKILL, a watchdog's hard exit)
        # keeps its partitions until its session expires: 20 s, not Faust's 60. The
        # heartbeats come from the consumer's own thread (every 3 s), not the agents' loop.
        broker_session_timeout=SESSION_TIMEOUT_S,
        TableManager=OrderedTableManager,  # streams.faustinternals.OrderedRecovery: why
    )


def create_app(
    settings: Settings,
    *,
    worker_index: int = 0,
    web_port: int | None = None,
    web_host: str = "127.0.0.1",
    store: str = "rocksdb://",
    broker: str | None = None,
    redis_client: aioredis.Redis | None = None,
    with_read_model: bool = True,
) -> StreamApp:
    app = new_app(
        settings,
        worker_index=worker_index,
        web_port=web_port,
        web_host=web_host,
        store=store,
        broker=broker,
    )
    app.stream_topics = declare_topics(app, settings)
    app.stream_tables = declare_tables(app, settings)
    if with_read_model and redis_client is None:
        redis_client = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=2.0, **connection_options(settings.redis_url)
        )
    app.readmodel = ReadModelWriter(redis_client, Keys(settings.topic_prefix))
    app.metrics = WorkerMetrics()
    app.stream_agents = register_agents(
        app, settings, app.stream_topics, app.stream_tables, app.readmodel, app.metrics
    )
    sources = (*app.stream_topics.stock_source.topics, *app.stream_topics.settle_source.topics)
    app.metrics.watch_consumer(app, sources)
    app.metrics.serve(app)
    health.serve(app, sources, settings.ready_max_lag)
    return app
