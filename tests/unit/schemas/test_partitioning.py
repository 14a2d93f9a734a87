"""Our murmur2 is Kafka's: equal to aiokafka's port for any key, hence the same partition."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from schemas.partitioning import Murmur2Partitioner, murmur2, partition_for


@given(st.binary(max_size=200))
def test_murmur2_equals_aiokafka_s_port(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(bytearray(data))


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_the_default_partitioner_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert partition_for(key, count) == expected
    assert Murmur2Partitioner()(key, partitions, partitions) == expected


# kafka-python's Java-compatibility cases (partitions of 1000, as the Java client chose)
@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_the_java_client_s_partitions(key: bytes, partition: int) -> None:
    assert partition_for(key, 1000) == partition


def test_a_key_without_bytes_goes_to_an_available_partition() -> None:
    assert Murmur2Partitioner()(None, [0, 1, 2], [2]) == 2
