"""The lean client's response handling (the real httptools parser, a stub transport: no I/O),
its pool, and the order requests it sends (checked with httptools' request parser)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httptools
import pytest

from bench.httpclient import (
    BadResponse,
    Connection,
    Endpoint,
    Pool,
    Response,
    ServerDisconnected,
    _Protocol,
)
from bench.loadgen import OrderRequests, Target, json_body


class StubTransport(asyncio.Transport):
    """Records what is written; ``close``/``abort`` report the loss to the protocol, as asyncio."""

    def __init__(self, protocol: _Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.protocol.connection_lost(None)

    def abort(self) -> None:
        self.close()


def connected() -> tuple[_Protocol, StubTransport]:
    protocol = _Protocol()
    transport = StubTransport(protocol)
    protocol.connection_made(transport)
    return protocol, transport


GET = b"GET / HTTP/1.1\r\n\r\n"


def asked(request: bytes = GET) -> tuple[_Protocol, StubTransport, asyncio.Future[Response]]:
    """A connected protocol that has sent ``request``; its response is still to come."""
    protocol, transport = connected()
    return protocol, transport, protocol.send(request, asyncio.get_running_loop())


def feed(protocol: _Protocol, data: bytes, piece: int | None = None) -> None:
    step = piece or len(data)
    for start in range(0, len(data), step):
        protocol.data_received(data[start : start + step])


CONTENT_LENGTH = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n"
    b'{"order_id":"o-1","status":"accepted"}    '
)
SHIPPED = b'{"order_id":"o-1","status":"shipped"}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (SHIPPED[:7], SHIPPED[7:]))
    + b"0\r\nX-Trailer: yes\r\n\r\n"
)


@pytest.mark.parametrize("piece", [None, 1, 7])
async def test_content_length_body_in_any_pieces(piece: int | None) -> None:
    protocol, transport, waiter = asked()
    feed(protocol, CONTENT_LENGTH, piece)
    response = await waiter
    assert response.status == 202
    assert json_body(response.body) == {"order_id": "o-1", "status": "accepted"}
    assert transport.written == [GET]
    assert not protocol.closed  # HTTP/1.1 without Connection: close stays open


@pytest.mark.parametrize("piece", [None, 1, 5])
async def test_chunked_body_is_decoded_in_any_pieces(piece: int | None) -> None:
    protocol, _, waiter = asked()
    feed(protocol, CHUNKED, piece)
    response = await waiter
    assert response == Response(200, SHIPPED)
    assert not protocol.closed


async def test_two_responses_on_one_connection() -> None:
    protocol, _ = connected()
    loop = asyncio.get_running_loop()
    first = protocol.send(b"A", loop)
    feed(protocol, CONTENT_LENGTH)
    assert (await first).status == 202
    second = protocol.send(b"B", loop)
    feed(protocol, CHUNKED, 3)
    assert (await second).status == 200


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
async def test_a_response_without_keep_alive_closes_the_connection(head: bytes) -> None:
    protocol, transport, waiter = asked()
    feed(protocol, head)
    assert await waiter == Response(200, b"ok")
    assert protocol.closed and transport.closing
    with pytest.raises(ServerDisconnected):
        protocol.send(b"again", asyncio.get_running_loop())


async def test_a_body_without_length_ends_with_the_connection() -> None:
    protocol, _, waiter = asked()
    feed(protocol, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
    assert not waiter.done()
    protocol.connection_lost(None)
    assert await waiter == Response(200, b"all of it")


async def test_connection_lost_mid_body_is_a_disconnect() -> None:
    protocol, _, waiter = asked()
    feed(protocol, CONTENT_LENGTH[:-10])
    protocol.connection_lost(None)
    with pytest.raises(ServerDisconnected):
        await waiter


async def test_garbage_is_a_bad_response_and_drops_the_connection() -> None:
    protocol, transport, waiter = asked()
    feed(protocol, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    with pytest.raises(BadResponse):
        await waiter
    assert protocol.closed and transport.closing


async def test_an_interim_response_is_skipped() -> None:
    protocol, _, waiter = asked(b"POST / HTTP/1.1\r\n\r\n")
    feed(protocol, b"HTTP/1.1 100 Continue\r\n\r\n" + CONTENT_LENGTH)
    assert (await waiter).status == 202


async def test_expiry_fails_the_request_with_a_timeout_and_drops_the_connection() -> None:
    protocol, transport, waiter = asked()
    protocol.expire()
    with pytest.raises(TimeoutError):
        await waiter
    assert transport.closing


async def test_bytes_nobody_asked_for_close_the_connection() -> None:
    protocol, transport = connected()
    protocol.data_received(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    assert protocol.closed and transport.closing


def test_endpoint_from_url() -> None:
    assert Endpoint.from_url("http://127.0.0.1:18080/") == Endpoint(
        "127.0.0.1", 18080, "127.0.0.1:18080", ""
    )
    assert Endpoint.from_url("http://shop.test/api").path_prefix == "/api"
    assert Endpoint.from_url("http://shop.test").port == 80
    with pytest.raises(ValueError):
        Endpoint.from_url("https://shop.test")


class ParsedRequest:
    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def parse_request(data: bytes) -> tuple[ParsedRequest, httptools.HttpRequestParser]:
    parsed = ParsedRequest()
    parser = httptools.HttpRequestParser(parsed)
    parser.feed_data(data)
    assert parsed.complete, data
    return parsed, parser


def test_order_requests_are_whole_http_requests() -> None:
    requests = OrderRequests(Target("t", "http://127.0.0.1:18080", "shop-key", "admin-key"))
    post, parser = parse_request(requests.post((("p-1", 2), ("p-2", 1)), 7))
    assert parser.get_method() == b"POST" and post.url == b"/v1/orders"
    assert post.headers[b"host"] == b"127.0.0.1:18080"
    assert post.headers[b"authorization"] == b"Bearer shop-key"
    assert post.headers[b"content-type"] == b"application/json"
    assert int(post.headers[b"content-length"]) == len(post.body)
    assert json.loads(post.body) == {
        "customer_id": "bench-c7",
        "items": [{"product_id": "p-1", "quantity": 2}, {"product_id": "p-2", "quantity": 1}],
    }
    again, _ = parse_request(requests.post((("p-1", 2),), 7))
    assert again.headers[b"idempotency-key"] != post.headers[b"idempotency-key"]

    get, parser = parse_request(requests.get("0b6f-11/x", 9.96))
    assert parser.get_method() == b"GET"
    assert get.url == b"/v1/orders/0b6f-11%2Fx?wait=10.0"
    assert get.headers[b"authorization"] == b"Bearer shop-key" and get.body == b""


def test_json_body_of_an_empty_response_is_none() -> None:
    assert json_body(b"  ") is None
    with pytest.raises(ValueError):
        json_body(b"<html>")


async def test_pool_lends_at_most_size_connections_first_come_first_served() -> None:
    pool = Pool(Endpoint.from_url("http://127.0.0.1:9"), size=2)
    first, second = pool.acquire_nowait(), pool.acquire_nowait()
    assert isinstance(first, Connection) and isinstance(second, Connection)
    assert pool.acquire_nowait() is None and pool.in_use == 2

    loop = asyncio.get_running_loop()
    early = loop.create_task(pool.acquire())
    late = loop.create_task(pool.acquire())
    await asyncio.sleep(0)
    pool.release(second)
    assert await early is second
    assert not late.done()
    pool.release(first)
    assert await late is first

    pool.release(first)
    assert pool.acquire_nowait() is first  # an idle one before a new one
    assert len(pool.created) == 2
    pool.close()


async def test_pool_wait_ends_at_the_deadline() -> None:
    pool = Pool(Endpoint.from_url("http://127.0.0.1:9"), size=1)
    held = pool.acquire_nowait()
    assert held is not None
    assert await pool.acquire(deadline=time.monotonic() - 1) is None
    pool.release(held)  # the expired waiter is gone: the connection goes back to idle
    assert pool.acquire_nowait() is held


async def test_a_request_cancelled_while_waiting_drops_its_connection() -> None:
    protocol, transport = connected()
    conn = Connection(Endpoint.from_url("http://127.0.0.1:9"))
    conn._protocol = protocol  # as if connected: nothing here opens a socket
    task = asyncio.get_running_loop().create_task(conn.request(GET, 10.0))
    await asyncio.sleep(0)
    assert transport.written == [GET]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert protocol.closed and transport.closing  # a late answer cannot be taken for the next
