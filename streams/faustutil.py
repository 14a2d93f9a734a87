"""The one place that reaches into Faust internals.

``stream.take_events`` yields a batch that may span partitions, while Faust tables pick
the changelog partition and the RocksDB partition store from the *current event*. To
write a partition's keys from a batch we bind one of that partition's events as the
current event while touching the table.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def bound(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
