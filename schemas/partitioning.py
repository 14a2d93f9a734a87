"""Which partition a key goes to: Kafka's default partitioner, murmur2 of the key bytes.

The same function as the Java client's ``Utils.murmur2`` and aiokafka's and
kafka-python's pure-Python ports, so every producer here (ingress, workers) and any
other Kafka client put a key in the same partition. aiokafka's port walks the key byte
by byte with a mask after each step; this one reads 4-byte words with one ``struct``
call, in about half the time (docs/decisions/0012-murmur2-port.md). A hypothesis test
checks both agree.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (an unsigned 32-bit int)."""
    length = len(data)
    words = length >> 2
    unpack = _WORDS.get(words)
    if unpack is None:
        unpack = _WORDS[words] = struct.Struct(f"<{words}I")
    h = _SEED ^ length
    for k in unpack.unpack_from(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (the default partitioner's choice)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Murmur2Partitioner:
    """aiokafka's ``DefaultPartitioner``, with this module's ``murmur2``."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[partition_for(key, len(all_partitions))]
