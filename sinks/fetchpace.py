"""Fetches paced to the load, for the sink's kafka-python consumer.

While records flow, fetch requests ask the broker to gather ``busy`` bytes or wait its
milliseconds (sinks.wiring: fewer, fuller fetches). Idle, those short waits are ~25 empty
fetches a second for the sink and as many for the broker to answer; so after a poll that
read nothing the next requests wait up to ``IDLE_FETCH_MAX_WAIT_MS`` for one byte. The broker
answers as soon as a record arrives, so the first order after a quiet spell waits no longer.
A poll that read nothing leaves nothing buffered, so every positioned partition is in that
long request (docs/decisions/0024-idle-fetches.md).

The one sinks module that touches kafka-python's private parts: its fetcher reads
``config["fetch_max_wait_ms"]`` and ``config["fetch_min_bytes"]`` for every fetch request
(kafka-python 3.0; tests/unit/sinks/test_fetch_pace.py checks the installed source).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaConsumer

IDLE_FETCH_MAX_WAIT_MS = 2000
IDLE_FETCH_MIN_BYTES = 1


def set_fetch_options(consumer: KafkaConsumer, max_wait_ms: int, min_bytes: int) -> None:
    """Have ``consumer`` build its next fetch requests with these options."""
    config = consumer._fetcher.config
    config["fetch_max_wait_ms"], config["fetch_min_bytes"] = max_wait_ms, min_bytes


@dataclass
class FetchPace:
    """Short fetches after a poll that read records, a long poll after one that read none."""

    busy_max_wait_ms: int
    busy_min_bytes: int
    idle: bool = False

    def after_poll(self, consumer: KafkaConsumer, records: int) -> None:
        idle = records == 0
        if idle == self.idle:
            return
        if idle:
            set_fetch_options(consumer, IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES)
        else:
            set_fetch_options(consumer, self.busy_max_wait_ms, self.busy_min_bytes)
        self.idle = idle
