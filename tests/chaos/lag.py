"""Progress of the stock agents' consumer group on ``orders.requests``, sampled while the
chaos run goes on, and the longest time a partition with waiting records made none.

``LagSampler`` (a thread, kafka-python's admin client) reads the group's committed offsets
and the topic's end offsets about once a second; samples fail while the broker is down and
are then simply missing. ``longest_stall`` finds, per partition, the spans during which
records waited (end > committed) and the committed offset did not move, and measures each
span outside the fault windows: a partition may stop while its worker is dead or paused,
the broker restarts, or the group has not yet noticed (its session timeout), but not
otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec

logger = logging.getLogger(__name__)

# faust-streaming's consumer group is the app id (orderstream.core.settings.Settings.app_id)
# and its session timeout streams.app.SESSION_TIMEOUT_S (20 s): a member that died
# without leaving keeps its partitions that long.
GROUP_SESSION_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    offsets: dict[int, tuple[int, int]]  # partition -> (committed, end)

    @property
    def lag(self) -> int:
        return sum(max(0, end - committed) for committed, end in self.offsets.values())


@dataclass(frozen=True)
class Stall:
    partition: int
    start: float
    end: float
    outside_s: float  # the part of [start, end] outside every fault window


class LagSampler(threading.Thread):
    def __init__(
        self, bootstrap: str, group: str, topic: str, partitions: int, interval_s: float = 1.0
    ) -> None:
        super().__init__(name="chaos-lag-sampler", daemon=True)
        self._servers = bootstrap
        self._group = group
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self.failures = 0

    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        admin: KafkaAdminClient | None = None
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                if admin is None:
                    admin = KafkaAdminClient(
                        bootstrap_servers=self._servers,
                        request_timeout_ms=3000,
                        client_id="chaos-lag",
                    )
                sample = self._sample(admin)
                with self._lock:
                    self.samples.append(sample)
            except Exception as exc:  # the broker is down or restarting: no sample
                logger.debug("lag sample failed: %r", exc)
                self.failures += 1
                if admin is not None:
                    try:
                        admin.close()
                    except Exception:
                        pass
                    admin = None
            self._halt.wait(max(0.0, self._interval_s - (time.monotonic() - started)))
        if admin is not None:
            admin.close()

    def _sample(self, admin: KafkaAdminClient) -> Sample:
        committed = admin.list_group_offsets({self._group: self._partitions})[self._group]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in self._partitions})
        at = time.monotonic()
        offsets = {}
        for tp in self._partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            offsets[tp.partition] = (done, ends[tp].offset)
        return Sample(at, offsets)


def outside(start: float, end: float, windows: Iterable[tuple[float, float]]) -> float:
    """Length of [start, end] not covered by any of ``windows``."""
    covered = 0.0
    cursor = start
    for w_start, w_end in sorted(windows):
        lo, hi = max(cursor, w_start), min(end, w_end)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return max(0.0, (end - start) - covered)


def stalls(samples: list[Sample], windows: list[tuple[float, float]]) -> list[Stall]:
    """Every span of samples in which a partition had waiting records and its committed
    offset stayed where it was at the span's first sample."""
    found: list[Stall] = []
    partitions = sorted({p for s in samples for p in s.offsets})
    for partition in partitions:
        value: int | None = None
        start = last = 0.0
        for sample in samples:
            if partition not in sample.offsets:
                continue
            committed, end = sample.offsets[partition]
            if end > committed and committed == value:
                last = sample.at
                continue
            if value is not None and last > start:
                found.append(Stall(partition, start, last, outside(start, last, windows)))
            if end > committed:
                value, start, last = committed, sample.at, sample.at
            else:
                value = None
        if value is not None and last > start:
            found.append(Stall(partition, start, last, outside(start, last, windows)))
    return found


def longest_stall(samples: list[Sample], windows: list[tuple[float, float]]) -> Stall | None:
    """The stall with the most time outside the fault windows (None: no stall at all)."""
    found = stalls(samples, windows)
    return max(found, key=lambda s: s.outside_s) if found else None
