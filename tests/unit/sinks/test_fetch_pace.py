"""The sink's fetches are paced to the load (sinks.fetchpace), through kafka-python's fetcher."""

from __future__ import annotations

import inspect

from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher

from sinks.fetchpace import (
    IDLE_FETCH_MAX_WAIT_MS,
    IDLE_FETCH_MIN_BYTES,
    QUIET_BEFORE_IDLE_S,
    FetchPace,
)
from sinks.wiring import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES


def test_the_installed_fetcher_reads_its_options_for_every_fetch_request() -> None:
    source = inspect.getsource(Fetcher._create_fetch_requests)
    assert "self.config['fetch_max_wait_ms']" in source
    assert "self.config['fetch_min_bytes']" in source
    assert "self._fetcher = Fetcher(" in inspect.getsource(KafkaConsumer.__init__)


def test_polls_that_read_nothing_for_a_quiet_spell_make_the_next_fetches_long_polls() -> None:
    # built, never connected: nothing is fetched, the fetcher's config is all that is read
    consumer = KafkaConsumer(
        bootstrap_servers="127.0.0.1:9",
        api_version=(3, 0),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        fetch_min_bytes=FETCH_MIN_BYTES,
    )
    try:
        now = [100.0]
        pace = FetchPace(FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, clock=lambda: now[0])
        config = consumer._fetcher.config

        def poll_read(records: int, after_s: float = 0.05) -> tuple[int, int]:
            now[0] += after_s
            pace.after_poll(consumer, records)
            return config["fetch_max_wait_ms"], config["fetch_min_bytes"]

        busy, idle = (
            (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES),
            (IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES),
        )
        assert poll_read(5) == busy
        # one empty poll (a busy fetch answered late) is not a quiet spell
        assert poll_read(0) == busy
        assert poll_read(3) == busy
        # nor is a run of them shorter than the spell, counted from the first empty one
        assert poll_read(0) == busy
        assert poll_read(0, QUIET_BEFORE_IDLE_S - 0.1) == busy
        assert poll_read(0, 0.1) == idle
        assert poll_read(0, 1.0) == idle
        assert poll_read(1) == busy  # the first record after a quiet spell
        assert poll_read(0) == busy  # the spell starts again from this poll
        assert poll_read(0, QUIET_BEFORE_IDLE_S) == idle
    finally:
        consumer.close()
