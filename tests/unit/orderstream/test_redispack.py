"""The hiredis packer writes the same bytes as redis-py's asyncio packer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis import asyncio as aioredis

from orderstream.core.redispack import HiredisPackingConnection, connection_options

args = st.lists(
    st.one_of(st.text(), st.binary(), st.integers(), st.floats(allow_nan=False)), max_size=40
)


@given(st.sampled_from(["EVALSHA", "HSET", "CONFIG GET", b"SCRIPT LOAD"]), args)
def test_commands_pack_to_the_same_bytes(command: str | bytes, values: list[object]) -> None:
    ours = HiredisPackingConnection().pack_command(command, *values)
    theirs = aioredis.Connection().pack_command(command, *values)
    assert b"".join(ours) == b"".join(bytes(part) for part in theirs)


def test_only_plain_redis_urls_get_the_class() -> None:
    assert connection_options("redis://h:1/0") == {"connection_class": HiredisPackingConnection}
    assert connection_options("rediss://h:1/0") == {}
    assert connection_options("unix:///tmp/r.sock") == {}
