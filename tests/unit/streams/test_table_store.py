"""The tables' RocksDB options survive a reopen (rocksdict alone drops them)."""

from __future__ import annotations

from pathlib import Path

from faust import stores

from streams.faustutil import TableStore, TableStoreOptions
from streams.tables import STORE_OPTIONS


def _filter_entries(db: object) -> int:
    props = db.property_value("rocksdb.aggregated-table-properties")  # type: ignore[attr-defined]
    for part in props.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "# entries for filter":
            return int(value)
    raise AssertionError(f"no filter entries in {props!r}")


def test_a_reopened_table_keeps_its_bloom_filter_and_block_cache(tmp_path: Path) -> None:
    options = TableStoreOptions(**STORE_OPTIONS, use_rocksdict=True)
    db = options.open(tmp_path / "p0")
    db[b"first"] = b"1"
    db.close()

    db = options.open(tmp_path / "p0")  # a worker restart
    try:
        for i in range(100):
            db[b"key-%d" % i] = b"v"
        db.flush()
        assert (
            db.property_int_value("rocksdb.block-cache-capacity")
            == STORE_OPTIONS["block_cache_size"]
        )
        # every key written after the reopen went into an SST file with a filter
        assert _filter_entries(db) == 101
        assert db[b"key-7"] == b"v"
        assert db.get(b"missing") is None
    finally:
        db.close()


def test_rocksdb_urls_resolve_to_the_table_store() -> None:
    assert stores.by_url("rocksdb://") is TableStore
