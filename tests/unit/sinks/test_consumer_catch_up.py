"""The sink's batching rules, driven by a scripted consumer.

A batch holding an ``OrderCommitted`` is not written while a cancellations partition
may hold a cancel the sink has not read: either its position is behind its high
watermark, or no fetch response has reported the partition yet (high watermark
unknown). The whole-system proof is the e2e test
``test_cancel_of_a_committed_order_before_shipping_releases_stock``; this pins the rule.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from sinks import consumer as consumer_module
from sinks.consumer import IDLE_POLL_MS, SinkConsumer
from sinks.fetchpace import QUIET_BEFORE_IDLE_S, FetchPace
from sinks.records import ConsumedRecord

COMMITTED = TopicPartition("orders.committed", 0)
CANCELS = TopicPartition("orders.cancellations", 0)


@dataclass
class Polled:
    """What one poll returns, and the high watermarks known afterwards."""

    records: list[tuple[TopicPartition, int]]
    highwater: dict[TopicPartition, int | None]


class Clock:
    """Stands in for the ``time`` module in sinks.consumer: polls advance it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class ScriptedConsumer:
    """Just the KafkaConsumer surface SinkConsumer.run touches."""

    def __init__(self, script: list[Polled], clock: Clock) -> None:
        self.clock = clock
        self._script = deque(script)
        self._positions = {COMMITTED: 0, CANCELS: 0}
        self._highwater: dict[TopicPartition, int | None] = {COMMITTED: None, CANCELS: None}
        self.timeouts: list[int] = []  # of every poll
        self._fetcher = SimpleNamespace(config={})  # what FetchPace sets

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.timeouts.append(timeout_ms)
        # every scripted step is what has arrived when the poll's wait ends
        self.clock.now += max(timeout_ms, 1) / 1000
        if not self._script:
            return {}
        step = self._script.popleft()
        self._highwater.update(step.highwater)
        out: dict[TopicPartition, list[Any]] = {}
        for tp, offset in step.records:
            out.setdefault(tp, []).append(
                SimpleNamespace(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                    key=b"o1",
                    value=b"{}",
                    headers=[],
                )
            )
            self._positions[tp] = offset + 1
        return out

    def assignment(self) -> set[TopicPartition]:
        return {COMMITTED, CANCELS}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater[tp]

    def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    def commit_async(self, offsets: Any) -> None:
        pass

    def pause(self, *tps: TopicPartition) -> None:
        pass

    def resume(self, *tps: TopicPartition) -> None:
        pass


class RecordingSink:
    """Collects the batches the consumer decides to write; stops it after the first."""

    def __init__(self, stop: threading.Event) -> None:
        self._buffer: list[ConsumedRecord] = []
        self.batches: list[list[tuple[str, int]]] = []
        self._stop = stop

    def add(self, record: ConsumedRecord) -> None:
        self._buffer.append(record)

    def __len__(self) -> int:
        return len(self._buffer)

    def buffered(self) -> list[ConsumedRecord]:
        return list(self._buffer)

    def flush(self) -> None:
        self.batches.append([(r.topic, r.offset) for r in self._buffer])
        self._buffer.clear()
        self._stop.set()

    def discard(self) -> None:
        self._buffer.clear()


def run_to_first_batch(
    monkeypatch: pytest.MonkeyPatch, script: list[Polled], pace: FetchPace | None = None
) -> tuple[RecordingSink, ScriptedConsumer]:
    clock = Clock()
    monkeypatch.setattr(consumer_module, "time", clock)
    stop = threading.Event()
    sink = RecordingSink(stop)
    kafka = ScriptedConsumer(script, clock)
    consumer = SinkConsumer(
        kafka,  # type: ignore[arg-type]
        sink,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
        consumer_name="test",
        batch_size=100,
        batch_timeout_s=0.05,
        stop=stop,
        cancellations_topic=CANCELS.topic,
        pace=pace,
    )
    consumer.run()
    return sink, kafka


def first_batch(monkeypatch: pytest.MonkeyPatch, script: list[Polled]) -> list[tuple[str, int]]:
    return run_to_first_batch(monkeypatch, script)[0].batches[0]


def test_an_idle_sink_blocks_in_its_poll_and_an_open_batch_waits_only_its_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # with no batch open a poll returns at the first record, so it may block long; once a
    # record opens a batch, the next poll waits no longer than the batch has left (50 ms)
    script = [
        Polled([], {}),
        Polled([], {}),
        Polled([(COMMITTED, 0)], {COMMITTED: 1, CANCELS: 0}),
    ]
    sink, kafka = run_to_first_batch(monkeypatch, script)
    assert sink.batches == [[("orders.committed", 0)]]
    idle, batching = kafka.timeouts[:3], kafka.timeouts[3:]
    assert idle == [IDLE_POLL_MS] * 3
    assert batching and all(timeout <= 50 for timeout in batching), batching
    assert IDLE_POLL_MS >= 500


def test_polls_with_short_fetches_are_short_so_a_quiet_spell_soon_ends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # starts busy; its clock is the consumer's (each poll advances it by its timeout)
    pace = FetchPace(40, 32 * 1024, clock=lambda: consumer_module.time.monotonic())
    script = [Polled([], {}) for _ in range(14)]
    script.append(Polled([(COMMITTED, 0)], {COMMITTED: 1, CANCELS: 0}))
    sink, kafka = run_to_first_batch(monkeypatch, script, pace)
    assert sink.batches == [[("orders.committed", 0)]]
    short = kafka.timeouts.index(IDLE_POLL_MS)
    # one batch timeout per empty poll until the spell is over, then the long polls
    assert kafka.timeouts[:short] == [50] * short
    assert QUIET_BEFORE_IDLE_S * 1000 <= short * 50 <= QUIET_BEFORE_IDLE_S * 1000 + 100
    assert kafka.timeouts[short:15] == [IDLE_POLL_MS] * (15 - short)
    assert kafka.timeouts[15:] and all(timeout <= 50 for timeout in kafka.timeouts[15:])


def test_a_commit_waits_for_a_cancellations_partition_no_fetch_has_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the commit arrives first; the cancellations partition's end is still unknown
    script = [
        Polled([(COMMITTED, 0)], {COMMITTED: 1}),
        Polled([], {}),
        Polled([(CANCELS, 0)], {CANCELS: 1}),
    ]
    assert first_batch(monkeypatch, script) == [
        ("orders.committed", 0),
        ("orders.cancellations", 0),
    ]


def test_a_commit_waits_for_cancels_below_the_high_watermark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [
        Polled([(COMMITTED, 0)], {COMMITTED: 1, CANCELS: 1}),
        Polled([(CANCELS, 0)], {}),
    ]
    assert first_batch(monkeypatch, script) == [
        ("orders.committed", 0),
        ("orders.cancellations", 0),
    ]


def test_a_batch_is_written_once_every_cancellation_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [
        Polled([(COMMITTED, 0)], {COMMITTED: 1, CANCELS: 0}),
        Polled([], {}),  # the batch is due here
        Polled([(CANCELS, 0)], {CANCELS: 1}),  # produced after the batch was due
    ]
    assert first_batch(monkeypatch, script) == [("orders.committed", 0)]


def test_the_wait_for_cancellations_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # a cancellations partition that no fetch ever reports does not hold the batch forever
    script = [Polled([(COMMITTED, 0)], {COMMITTED: 1})]
    assert first_batch(monkeypatch, script) == [("orders.committed", 0)]
