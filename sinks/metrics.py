"""The sink's and the relay's Prometheus metrics and health, each on its own port
(``--metrics-port``): ``/metrics``, ``/livez`` and ``/readyz`` (``orderstream.core.health``).

Both are threads-and-blocking-I/O programs, so an HTTP server thread serves them; the
collectors read counters the loops already keep (no locks on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from orderstream.core import health
from orderstream.core.replica import ReplicaLag
from sinks.consumer import SinkConsumer
from sinks.exceptions import LockLost
from sinks.postgres import PostgresSink
from sinks.relay import OutboxRelay


class SinkCollector(Collector):
    def __init__(
        self,
        sink: PostgresSink,
        consumer: SinkConsumer,
        replica_lag: Callable[[], list[ReplicaLag]] | None = None,
    ) -> None:
        self._sink = sink
        self._consumer = consumer
        self._replica_lag = replica_lag

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        sink, consumer = self._sink, self._consumer
        yield from counters(
            (
                "orderstream_sink_records_written",
                "Records committed to PostgreSQL (with their offsets, one transaction per batch)",
                sink.written,
            ),
            ("orderstream_sink_batches", "Batches committed to PostgreSQL", sink.batches),
            (
                "orderstream_sink_dead_letters",
                "Records sent to the dead-letter topic (unparseable, or refused by PostgreSQL)",
                sink.dead_lettered,
            ),
            (
                "orderstream_sink_flush_failures",
                "Batch commits that failed and were retried with backoff (PostgreSQL down/slow)",
                consumer.flush_failures,
            ),
        )
        yield partition_lag(
            "orderstream_sink_partition_lag",
            "Records past what PostgreSQL holds, per assigned partition",
            consumer.lag,
        )
        if self._replica_lag is not None:
            yield from replica_lag(self._replica_lag)


class RelayCollector(Collector):
    def __init__(self, relay: OutboxRelay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self._relay.stats
        yield from counters(
            (
                "orderstream_relay_events_sent",
                "Outbox rows published to Kafka and marked sent (shipped events, dead letters)",
                stats.sent,
            ),
            ("orderstream_relay_rounds", "Outbox batches published", stats.rounds),
            (
                "orderstream_relay_failures",
                "Relay rounds that failed (Kafka or PostgreSQL) and were retried",
                stats.failures,
            ),
            (
                "orderstream_relay_producers_replaced",
                "Kafka producers the relay replaced after a round that was not acknowledged",
                stats.producers_replaced,
            ),
        )


def counters(*rows: tuple[str, str, int]) -> Iterator[CounterMetricFamily]:
    """One counter family per (name, documentation, value) (``_total`` is appended)."""
    for name, documentation, value in rows:
        yield CounterMetricFamily(name, documentation, value=value)


def partition_lag(
    name: str, documentation: str, lag: Callable[[], Mapping[tuple[str, int], int]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["topic", "partition"])
    try:
        current = dict(lag())
    except Exception:  # the consumer is closing
        current = {}
    for (topic, partition), value in sorted(current.items()):
        family.add_metric([topic, str(partition)], value)
    return family


def replica_lag(sample: Callable[[], list[ReplicaLag]]) -> Iterator[GaugeMetricFamily]:
    """The primary's view of each streaming replica (``orderstream.core.replica.lag``), read
    at scrape time; no family rows while the primary cannot be asked."""
    behind = GaugeMetricFamily(
        "orderstream_pg_replica_lag_bytes",
        "WAL written by the primary and not yet replayed by the replica",
        labels=["replica"],
    )
    replay = GaugeMetricFamily(
        "orderstream_pg_replica_replay_lag_seconds",
        "How long the replica took to replay the primary's last write (absent when idle)",
        labels=["replica"],
    )
    try:
        rows = sample()
    except Exception:  # PostgreSQL down: the sink's own metrics still answer
        rows = []
    for row in rows:
        if row.behind_bytes is not None:
            behind.add_metric([row.name], row.behind_bytes)
        if row.replay_lag_s is not None:
            replay.add_metric([row.name], row.replay_lag_s)
    yield behind
    yield replay


LIVE_WITHIN_S = 60.0  # a loop that has not come round for this long is not alive


class SinkHealth:
    """The sink's probes. Live: waiting for its shard lock, or its loop came round within
    ``LIVE_WITHIN_S``. Ready: it holds the lock and consumes, PostgreSQL answers, and no
    partition is more than ``max_lag`` records behind what PostgreSQL holds."""

    def __init__(self, conninfo: str, max_lag: int) -> None:
        self.runner: SinkConsumer | None = None  # both set once the shard lock is held
        self.sink: PostgresSink | None = None
        self._database = health.database_reachable(conninfo)
        self._max_lag = max_lag

    def live(self) -> dict[str, health.Check]:
        return {"loop": self._loop}

    def ready(self) -> dict[str, health.Check]:
        return {"shard": self._consuming, "database": self._database, "lag": self._lag}

    def _loop(self) -> tuple[bool, str]:
        if self.runner is None:
            return True, "waiting for the shard lock"
        return self.runner.heartbeat.check(LIVE_WITHIN_S)()

    def _consuming(self) -> tuple[bool, str]:
        if self.runner is None or self.sink is None:
            return False, "waiting for the shard lock (another instance holds it)"
        try:
            self.sink.check_lock()
        except LockLost as lost:
            return False, str(lost)
        return True, "holds the shard lock and consumes"

    def _lag(self) -> tuple[bool, str]:
        if self.runner is None:
            return False, "not consuming"
        return health.lag_within(self.runner.lag, self._max_lag)()


class RelayHealth:
    """The relay's probes. Live: its loop came round within ``LIVE_WITHIN_S`` (it waits at
    most its poll interval between rounds). Ready: PostgreSQL answers."""

    def __init__(self, conninfo: str) -> None:
        self.heartbeat = health.Heartbeat()
        self._database = health.database_reachable(conninfo)

    def live(self) -> dict[str, health.Check]:
        return {"loop": self.heartbeat.check(LIVE_WITHIN_S)}

    def ready(self) -> dict[str, health.Check]:
        return {"database": self._database}


def serve(
    port: int,
    host: str,
    live: Mapping[str, health.Check],
    ready: Mapping[str, health.Check],
) -> CollectorRegistry:
    """Serve ``/metrics``, ``/livez`` and ``/readyz`` from a daemon thread; returns the
    registry (collectors may be registered later, once what they read exists)."""
    registry = CollectorRegistry()
    health.serve(registry, port, host, live, ready)
    return registry
