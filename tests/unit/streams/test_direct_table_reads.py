"""DirectTableWriter.get reads the bound event's partition, as Faust's store does."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from streams.faustinternals import bound
from streams.faustutil import DirectTableWriter, Outbox


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:  # what the store reads of the bound event: its message's partition
    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_get_returns_what_put_stored_and_none_for_a_key_never_stored(
    tmp_path: Path, store: str
) -> None:
    app = faust.App("t", store=store, datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    table = app.Table("stock", partitions=2, key_type=bytes, value_type=bytes)
    writer = DirectTableWriter(table, Outbox(app))
    with bound(_Event(1)):  # type: ignore[arg-type]
        writer.put(1, b"line:o1:0", b"reserved")
        assert writer.get(b"line:o1:0") == b"reserved"
        assert writer.get(b"line:o2:0") is None
        writer.put(1, b"line:o1:0", None)
        assert writer.get(b"line:o1:0") is None
        writer.put(1, b"product:P", b"5")
    assert table.data.get(b"product:P") == b"5"  # what Faust's own read finds


def test_on_rocksdb_a_read_stays_in_the_bound_partition(tmp_path: Path) -> None:
    app = faust.App("t", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    table = app.Table("stock", partitions=2, key_type=bytes, value_type=bytes)
    writer = DirectTableWriter(table, Outbox(app))
    with bound(_Event(1)):  # type: ignore[arg-type]
        writer.put(1, b"product:P", b"5")
    with bound(_Event(0)):  # type: ignore[arg-type]
        assert writer.get(b"product:P") is None  # as Store._get with an event of partition 0
    assert writer.get(b"product:P") == b"5"  # no event bound: Faust's search of every partition
