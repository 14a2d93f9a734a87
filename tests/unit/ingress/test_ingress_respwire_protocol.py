"""ingress.respwire's reply matching, as pure logic: however the bytes of the replies are
split into reads, each request gets exactly its own replies, in order. (The wire on the real
Redis: tests/integration/ingress/test_ingress_respwire.py.)"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.respwire import _Protocol, _PushProtocol


class Transport:
    """Records what the protocol writes (the requests); nothing is sent anywhere."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def resp(value: Any) -> bytes:
    """RESP2 encoding of a reply value (bytes, int, None, list, or an error string)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(resp(v) for v in value)
    return b"-%s\r\n" % value.encode()  # str: an error reply


replies = st.recursive(
    st.none() | st.integers(-(2**40), 2**40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)


@given(
    batches=st.lists(st.lists(replies, min_size=1, max_size=5), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_each_request_gets_its_own_replies_however_the_bytes_arrive(
    batches: list[list[Any]], cuts: list[int]
) -> None:
    async def main() -> list[list[Any]]:
        protocol = _Protocol()
        protocol.connection_made(Transport())  # type: ignore[arg-type]
        futures = [protocol.request(b"request", len(batch)) for batch in batches]
        stream = b"".join(resp(v) for batch in batches for v in batch)
        points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
        for start, end in itertools.pairwise(points):
            protocol.data_received(stream[start:end])
        assert all(f.done() for f in futures)
        return [f.result() for f in futures]

    assert asyncio.run(main()) == batches


def test_an_error_reply_is_a_value_in_its_place() -> None:
    async def main() -> list[Any]:
        protocol = _Protocol()
        protocol.connection_made(Transport())  # type: ignore[arg-type]
        future = protocol.request(b"request", 3)
        protocol.data_received(resp(b"a") + resp("ERR boom") + resp(1))
        return await future

    first, error, last = asyncio.run(main())
    assert (first, last) == (b"a", 1)
    assert isinstance(error, hiredis.ReplyError) and str(error) == "ERR boom"


def test_a_lost_connection_fails_every_request_waiting() -> None:
    import redis

    async def main() -> None:
        protocol = _Protocol()
        protocol.connection_made(Transport())  # type: ignore[arg-type]
        waiting = [protocol.request(b"request", 2) for _ in range(3)]
        protocol.data_received(resp(b"only one of two"))
        protocol.connection_lost(None)
        for future in waiting:
            with pytest.raises(redis.ConnectionError):
                await future
        with pytest.raises(redis.ConnectionError):
            protocol.request(b"request", 1)  # and nothing more is sent on it

    asyncio.run(main())


def test_a_protocol_error_closes_the_connection() -> None:
    import redis

    async def main() -> bool:
        protocol = _Protocol()
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        future = protocol.request(b"request", 1)
        protocol.data_received(b"?not RESP\r\n")
        with pytest.raises(redis.ConnectionError, match="protocol error"):
            await future
        return transport.closed

    assert asyncio.run(main())


def test_pushes_reach_the_callback_in_order_however_the_bytes_arrive() -> None:
    pushes = [
        [b"subscribe", b"os:order:1", 1],
        [b"message", b"os:order:1", b"committed"],
        [b"message", b"os:order:1", b"shipped"],
    ]
    stream = b"".join(resp(p) for p in pushes)

    async def main() -> list[Any]:
        got: list[Any] = []
        protocol = _PushProtocol(got.append)
        protocol.connection_made(Transport())  # type: ignore[arg-type]
        for i in range(len(stream)):  # one byte per read
            protocol.data_received(stream[i : i + 1])
        return got

    assert asyncio.run(main()) == pushes
