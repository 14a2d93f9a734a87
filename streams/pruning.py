"""Which line records of a partition to consider for pruning in one batch.

Line records (``L\\x1f{order}\\x1f{line}``) are needed while their line can be replayed,
healed or released; after ``stock_line_retention_s`` they only take space, in RocksDB and in
the changelog every restore reads. The stock agent prunes them a little at a time, in the
batches it processes anyway (a write of the table must happen with an event of its
partition bound): each batch of a partition reads the next ``keys_per_batch`` line keys in
key order from where the previous batch stopped, and ``ledger.prune_lines`` deletes those
decided before the cutoff. A pass over a partition's lines ends at the last key; the next
pass starts ``pass_every_s`` later. An idle partition is not pruned: it does not grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from streams.records import LINE_PREFIX, LineState, decode_stock

KEYS_PER_BATCH = 512
PASS_EVERY_S = 600.0

# (partition, first key, limit) -> (key, value) pairs in key order: faustutil.scan_partition
Scan = Callable[[int, bytes, int], list[tuple[bytes, bytes]]]


@dataclass
class _Pass:
    cursor: bytes | None = LINE_PREFIX  # None: between passes
    next_at: float = 0.0


class LinePruner:
    def __init__(
        self,
        scan: Scan,
        *,
        keys_per_batch: int = KEYS_PER_BATCH,
        pass_every_s: float = PASS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scan = scan
        self._keys_per_batch = keys_per_batch
        self._pass_every_s = pass_every_s
        self._clock = clock
        self._passes: dict[int, _Pass] = {}

    def candidates(self, partition: int, decided_before: datetime) -> list[bytes]:
        """The next line keys of ``partition`` whose lines were decided before the cutoff
        (empty between passes); ``ledger.prune_lines`` checks each again before deleting."""
        state = self._passes.setdefault(partition, _Pass())
        now = self._clock()
        if state.cursor is None:
            if now < state.next_at:
                return []
            state.cursor = LINE_PREFIX
        rows = self._scan(partition, state.cursor, self._keys_per_batch)
        if len(rows) < self._keys_per_batch:
            state.cursor, state.next_at = None, now + self._pass_every_s
        else:
            state.cursor = rows[-1][0] + b"\x00"  # the next key after the last one read
        old = []
        for key, value in rows:
            line = decode_stock(value)
            if isinstance(line, LineState) and line.decided_at < decided_before:
                old.append(key)
        return old
