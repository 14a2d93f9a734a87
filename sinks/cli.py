"""``orderstream sink``, ``orderstream relay`` and ``orderstream migrate``."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import click

from orderstream.core import gctune, tracing
from orderstream.core.replica import ReplicaLag
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)


def _replica_lag(settings: Settings) -> Callable[[], list[ReplicaLag]] | None:
    """With a read replica configured, the primary's view of its lag, for /metrics (a
    connection of its own: scrapes never wait for the sink's pool)."""
    if settings.read_database_url == settings.database_url:
        return None
    import sqlalchemy as sa

    from orderstream.core import replica

    primary = sa.create_engine(
        settings.database_url,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,  # a primary restarted since the last scrape
        connect_args={"connect_timeout": 2},
    )
    return lambda: replica.lag(primary)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def metrics_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--metrics-port`` and ``--metrics-host`` (sinks.metrics.serve: metrics and health)."""
    command = click.option("--metrics-host", default="127.0.0.1", show_default=True)(command)
    return click.option(
        "--metrics-port",
        default=0,
        show_default=True,
        help="Serve /metrics, /livez and /readyz here (0: do not).",
    )(command)


@click.command()
def migrate() -> None:
    """Bring the PostgreSQL schema to the head revision (alembic upgrade head)."""
    from sinks.migrate import upgrade

    upgrade(Settings.from_env().database_url)
    click.echo("database at head")


@click.command()
@click.option(
    "--group-id",
    default=None,
    help="Group id under which offsets/lag are reported to Kafka; partitions are owned by "
    "--shard, not by the group (default: <prefix><app_id>.sink).",
)
@click.option("--no-read-model", is_flag=True, help="Do not write the Redis read model.")
@click.option("--shard", default=0, show_default=True, help="This instance's shard.")
@click.option("--shards", default=1, show_default=True, help="Instances sharing the partitions.")
@metrics_options
def sink(
    group_id: str | None,
    no_read_model: bool,
    shard: int,
    shards: int,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Project order events into PostgreSQL; queue shipped events in the outbox."""
    from sinks.exceptions import LockLost
    from sinks.lock import EXIT_LOCK_LOST, ShardLock
    from sinks.metrics import SinkCollector, SinkHealth, serve
    from sinks.wiring import libpq_url, lock_name, make_sink_consumer

    settings = Settings.from_env()
    tracing.configure(settings, "sink")
    stop = _stop_on_signals()
    probes = SinkHealth(libpq_url(settings.database_url), settings.ready_max_lag)
    # served before the lock is taken: an instance waiting for it is alive, and not ready
    registry = (
        serve(metrics_port, metrics_host, probes.live(), probes.ready()) if metrics_port else None
    )
    lock = ShardLock(libpq_url(settings.database_url), lock_name(settings, shard, shards))
    if not lock.acquire(stop):
        return
    runner, pg_sink, engine = make_sink_consumer(
        settings,
        group_id=group_id,
        with_read_model=not no_read_model,
        stop=stop,
        shard=shard,
        shards=shards,
        lock=lock,
    )
    pg_sink.setup()
    rewritten = pg_sink.rewrite_recent_read_model(settings.topic_prefix, shard, shards)
    logger.info("read model: wrote %d recent statuses again", rewritten)
    if registry is not None:
        registry.register(SinkCollector(pg_sink, runner, _replica_lag(settings)))
    probes.runner, probes.sink = runner, pg_sink
    logger.info("sink consuming with batch size %d", settings.sink_batch_size)
    gctune.tune()
    try:
        runner.run()
    except LockLost:
        # logged at CRITICAL by the consumer; the supervisor starts the sink again and it
        # waits on the lock like any second instance
        raise SystemExit(EXIT_LOCK_LOST) from None
    finally:
        runner.close()
        engine.dispose()
        lock.release()


@click.command()
@click.option("--batch-size", default=1000, show_default=True)
@click.option(
    "--poll-interval",
    default=2.0,
    show_default=True,
    help="Seconds between polls without a NOTIFY (a NOTIFY wakes the relay at once).",
)
@click.option(
    "--retention-hours", default=168.0, show_default=True, help="Keep sent outbox rows this long."
)
@click.option("--no-listen", is_flag=True, help="Poll only (no LISTEN/NOTIFY).")
@metrics_options
def relay(
    batch_size: int,
    poll_interval: float,
    retention_hours: float,
    no_listen: bool,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Publish the outbox to Kafka (at least once, in id order)."""
    from sinks.metrics import RelayCollector, RelayHealth, serve
    from sinks.relay import OutboxListener, OutboxRelay, make_producer, run_relay
    from sinks.wiring import libpq_url, make_engine

    settings = Settings.from_env()
    tracing.configure(settings, "relay")
    stop = _stop_on_signals()
    engine = make_engine(settings)
    listener = OutboxListener(None if no_listen else libpq_url(settings.database_url))
    outbox_relay = OutboxRelay(engine, lambda: make_producer(settings.kafka_bootstrap), batch_size)
    probes = RelayHealth(libpq_url(settings.database_url))
    if metrics_port:
        serve(metrics_port, metrics_host, probes.live(), probes.ready()).register(
            RelayCollector(outbox_relay)
        )
    gctune.tune()
    try:
        run_relay(
            outbox_relay,
            listener,
            stop,
            poll_interval_s=poll_interval,
            retention_s=retention_hours * 3600,
            heartbeat=probes.heartbeat,
        )
    finally:
        outbox_relay.close()
        engine.dispose()
