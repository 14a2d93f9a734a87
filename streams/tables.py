"""The two tables. Keys and values are raw bytes (``streams.records`` encodes them).

Faust writes a table key to the changelog partition of the event being processed
(``use_partitioner=False``, the default) and reads it from that partition's store, so
composite keys such as a line record live in their product's partition as long as they
are touched while processing that partition's event (``streams.faustinternals.bound``).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from orderstream.core.settings import Settings

STOCK_TABLE = "stock_by_product"
ORDERS_TABLE = "pending_orders"


# RocksDB options of every table partition, applied on every open by
# streams.faustutil.TableStore (rocksdict alone drops them when it reopens a table).
# Bloom filters of 10 bits per key (~1% false positives) instead of Faust's 3: most lookups
# are for keys that do not exist yet (a new order's line, a new customer's holding), and a
# false positive costs a block read. A 32 MiB block cache per partition instead of Faust's
# 2 GiB (16 partitions per worker: 512 MiB at most).
STORE_OPTIONS = {"bloom_filter_size": 10, "block_cache_size": 32 * 1024 * 1024}


@dataclass(frozen=True)
class StreamTables:
    stock_by_product: faust.types.TableT
    pending_orders: faust.types.TableT


def _raw_table(app: faust.App, name: str, settings: Settings) -> faust.types.TableT:
    return app.Table(
        name,
        key_type=bytes,  # bytes -> the "raw" serializer for keys and values
        value_type=bytes,
        partitions=settings.partitions,
        options=STORE_OPTIONS,
    )


def declare_tables(app: faust.App, settings: Settings) -> StreamTables:
    return StreamTables(
        stock_by_product=_raw_table(app, STOCK_TABLE, settings),
        pending_orders=_raw_table(app, ORDERS_TABLE, settings),
    )


def changelog_topic(settings: Settings, table: str = STOCK_TABLE) -> str:
    """The changelog topic Faust creates for ``table`` (``{app_id}-{table}-changelog``)."""
    return f"{settings.app_id}-{table}-changelog"
