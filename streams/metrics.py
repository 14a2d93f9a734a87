"""A worker's Prometheus metrics, served at ``/metrics`` on its Faust web port.

What an operator scaling workers needs: how much each agent does (events, batches, time per
batch), what leaves (records per output topic), and how far behind it is (per assigned
partition: records past the committed offset, from the high watermarks the fetches bring;
no broker request at scrape time). One registry per app, so that several apps in one
process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.faustinternals import committed_offsets

BATCH_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def lag_of(
    partitions: Iterable[Any],
    highwater: Callable[[Any], int | None],
    committed: Mapping[Any, int | None],
) -> dict[tuple[str, int], int]:
    """Records past the committed offset of each partition whose end a fetch has reported."""
    lag = {}
    for tp in partitions:
        high = highwater(tp)
        if high is not None:
            lag[(tp.topic, tp.partition)] = max(0, high - (committed.get(tp) or 0))
    return lag


class PartitionCollector(Collector):
    """Assigned partitions of the agents' source topics and their lag, read from the
    consumer when scraped (changelog partitions are only read while recovering: left out)."""

    def __init__(
        self,
        sources: Iterable[str],
        assignment: Callable[[], Iterable[Any]],
        highwater: Callable[[Any], int | None],
        committed: Callable[[], dict[Any, int | None]],
        flags: Callable[[], dict[str, bool]],
    ) -> None:
        self._sources = frozenset(sources)
        self._assignment = assignment
        self._highwater = highwater
        self._committed = committed
        self._flags = flags

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "orderstream_worker_partition_lag",
            "Records past this worker's committed offset, per assigned partition (from the "
            "high watermark of the last fetch)",
            labels=["topic", "partition"],
        )
        assigned = GaugeMetricFamily(
            "orderstream_worker_assigned_partitions",
            "Partitions assigned to this worker, per topic",
            labels=["topic"],
        )
        state = GaugeMetricFamily(
            "orderstream_worker_state",
            "1 while the worker rebalances or recovers its tables",
            labels=["state"],
        )
        try:
            partitions = sorted(
                (tp for tp in self._assignment() if tp.topic in self._sources),
                key=lambda tp: (tp.topic, tp.partition),
            )
            committed = self._committed()
        except Exception:  # the consumer is not started yet (or stopping)
            partitions, committed = [], {}
        per_topic: dict[str, int] = {}
        for tp in partitions:
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
        for (topic, partition), behind in lag_of(partitions, self._highwater, committed).items():
            lag.add_metric([topic, str(partition)], behind)
        for topic, count in sorted(per_topic.items()):
            assigned.add_metric([topic], count)
        for name, on in sorted(self._flags().items()):
            state.add_metric([name], 1 if on else 0)
        yield lag
        yield assigned
        yield state


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "orderstream_worker_events_total",
            "Events an agent processed",
            ["agent"],
            registry=self.registry,
        )
        self.batches = Histogram(
            "orderstream_worker_batch_seconds",
            "Time an agent spent on one batch (decisions, table writes, the outbox flush)",
            ["agent"],
            buckets=BATCH_SECONDS,
            registry=self.registry,
        )
        self.records_out = Counter(
            "orderstream_worker_records_out_total",
            "Records an agent's outbox delivered, per topic (decisions, reservations, "
            "releases, changelogs)",
            ["topic"],
            registry=self.registry,
        )

    def count_delivered(self, topic: str, records: int) -> None:
        self.records_out.labels(topic).inc(records)

    @contextmanager
    def batch(self, agent: str, events: int) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.batches.labels(agent).observe(time.perf_counter() - started)
        self.events.labels(agent).inc(events)

    def watch_consumer(self, app: Any, sources: Iterable[str]) -> None:
        """Lag and assignment of ``app``'s consumer on ``sources``, looked up when scraped."""
        self.registry.register(
            PartitionCollector(
                sources,
                assignment=lambda: app.consumer.assignment(),
                highwater=lambda tp: app.consumer.highwater(tp),
                committed=lambda: dict(committed_offsets(app)),
                flags=lambda: {
                    "rebalancing": bool(app.rebalancing),
                    "recovering": bool(app.in_recovery),
                },
            )
        )

    def serve(self, app: Any) -> None:
        """``GET /metrics`` on the worker's web server."""
        registry = self.registry

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            # (aiohttp refuses a charset in content_type=, so the header is set whole)
            return web.bytes(render(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
