"""The sink's fetches are paced to the load (sinks.fetchpace), through kafka-python's fetcher."""

from __future__ import annotations

import inspect

from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher

from sinks.fetchpace import IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES, FetchPace
from sinks.wiring import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES


def test_the_installed_fetcher_reads_its_options_for_every_fetch_request() -> None:
    source = inspect.getsource(Fetcher._create_fetch_requests)
    assert "self.config['fetch_max_wait_ms']" in source
    assert "self.config['fetch_min_bytes']" in source
    assert "self._fetcher = Fetcher(" in inspect.getsource(KafkaConsumer.__init__)


def test_a_poll_that_read_nothing_makes_the_next_fetches_long_polls() -> None:
    # built, never connected: nothing is fetched, the fetcher's config is all that is read
    consumer = KafkaConsumer(
        bootstrap_servers="127.0.0.1:9",
        api_version=(3, 0),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        fetch_min_bytes=FETCH_MIN_BYTES,
    )
    try:
        pace = FetchPace(FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES)
        config = consumer._fetcher.config

        def poll_read(records: int) -> tuple[int, int]:
            pace.after_poll(consumer, records)
            return config["fetch_max_wait_ms"], config["fetch_min_bytes"]

        busy, idle = (
            (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES),
            (IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES),
        )
        assert poll_read(5) == busy
        assert poll_read(0) == idle
        assert poll_read(0) == idle
        assert poll_read(1) == busy  # the first record after a quiet spell
        assert poll_read(0) == idle
    finally:
        consumer.close()
