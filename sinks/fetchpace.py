"""Fetches paced to the load, for the sink's kafka-python consumer.

While records flow, fetch requests ask the broker to gather ``busy`` bytes or wait its
milliseconds (sinks.wiring: fewer, fuller fetches). Idle, those short waits are ~25 empty
fetches a second for the sink and as many for the broker to answer; so once polls have read
nothing for ``QUIET_BEFORE_IDLE_S``, the next requests wait up to ``IDLE_FETCH_MAX_WAIT_MS``
for one byte. The broker answers as soon as a record arrives, so the first order after a
quiet spell waits no longer (docs/decisions/0024-idle-fetches.md).

One empty poll is not a quiet spell. On a loaded machine a short fetch can be answered after
the poll that waited for it gave up; that answer then lands while the next request is being
built, so the partitions it carried (the busy ones) are left out of that request, and with
the long-poll options their next records waited for it to expire: the whole pipeline stood
still for 1-2 s, in about one catalog benchmark run in five.

The one sinks module that touches kafka-python's private parts: its fetcher reads
``config["fetch_max_wait_ms"]`` and ``config["fetch_min_bytes"]`` for every fetch request
(kafka-python 3.0; tests/unit/sinks/test_fetch_pace.py checks the installed source).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer

IDLE_FETCH_MAX_WAIT_MS = 2000
IDLE_FETCH_MIN_BYTES = 1
#: How long polls must read nothing before the fetches long-poll: well past a busy fetch
#: answered late, and short enough that a quiet sink stops its short fetches within a second.
QUIET_BEFORE_IDLE_S = 0.5


def set_fetch_options(consumer: KafkaConsumer, max_wait_ms: int, min_bytes: int) -> None:
    """Have ``consumer`` build its next fetch requests with these options."""
    config = consumer._fetcher.config
    config["fetch_max_wait_ms"], config["fetch_min_bytes"] = max_wait_ms, min_bytes


@dataclass
class FetchPace:
    """Short fetches while polls read records, a long poll once they have read none for
    ``QUIET_BEFORE_IDLE_S``; the first record puts the short fetches back."""

    busy_max_wait_ms: int
    busy_min_bytes: int
    idle: bool = False
    clock: Callable[[], float] = time.monotonic
    _quiet_since: float | None = field(default=None, init=False, repr=False)

    def after_poll(self, consumer: KafkaConsumer, records: int) -> None:
        if records:
            self._quiet_since = None
            if self.idle:
                set_fetch_options(consumer, self.busy_max_wait_ms, self.busy_min_bytes)
                self.idle = False
            return
        now = self.clock()
        if self._quiet_since is None:
            self._quiet_since = now
        if not self.idle and now - self._quiet_since >= QUIET_BEFORE_IDLE_S:
            set_fetch_options(consumer, IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES)
            self.idle = True
