"""The lean load-generator client against real local HTTP servers over TCP.

A small asyncio server on 127.0.0.1 answers with exactly the framing each test needs
(Content-Length, chunked, ``Connection: close``, a body ended by closing, a dropped or hung
connection) and plays a tiny order API (POST -> 202, the first GET pending, the next shipped);
the bare Falcon app runs under gunicorn for the real thing. No timings are asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from bench.figures import NOT_STARTED, TERMINAL
from bench.httpclient import ConnectError, Connection, Endpoint, ServerDisconnected
from bench.loadgen import LoadConfig, Target, hammer, run_orders
from bench.processes import gunicorn, wait_until_answers

BODY = b'{"ok": true}'


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def ok(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join([f"HTTP/1.1 {status}\r\n", *(f"{h}\r\n" for h in headers)])
    return b"%sContent-Length: %d\r\n\r\n%s" % (head.encode(), len(body), body)


def chunked(status: str, body: bytes) -> bytes:
    parts = [body[: len(body) // 2], body[len(body) // 2 :]]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (
        status.encode(),
        chunks,
    )


@dataclass
class TinyServer:
    """Reads whole requests (Content-Length bodies only) and answers by path."""

    port: int = 0
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    never_final: bool = False
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                body = await reader.readexactly(int(headers.get("Content-Length", "0")))
                self.requests.append(f"{method} {target}")
                if not await self.answer(method, target, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def answer(
        self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Write the response; False to close the connection afterwards."""
        path = target.split("?", 1)[0]
        if path == "/cl":
            writer.write(ok(BODY))
        elif path == "/chunked":
            writer.write(chunked("200 OK", BODY))
        elif path == "/close":
            writer.write(ok(BODY, "Connection: close"))
            return False
        elif path == "/idle-close":  # keep-alive promised, then closed (an idle timeout)
            writer.write(ok(BODY))
            await writer.drain()
            return False
        elif path == "/eof":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 70_000)
            return False
        elif path == "/drop":
            return False
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif method == "POST" and path == "/v1/orders":
            order = json.loads(body)
            assert order["items"] and order["customer_id"].startswith("bench-c")
            order_id = str(uuid.uuid4())
            self.polls[order_id] = 0
            accepted = json.dumps({"order_id": order_id, "status": "accepted"}).encode()
            writer.write(ok(accepted, status="202 Accepted"))
        elif method == "GET" and path.startswith("/v1/orders/"):
            order_id = path.rsplit("/", 1)[1]
            self.polls[order_id] += 1
            if self.never_final:
                await asyncio.sleep(float(target.split("wait=", 1)[1]))
                status = "accepted"
            else:
                status = "shipped" if self.polls[order_id] > 1 else "accepted"
            answer = json.dumps({"order_id": order_id, "status": status}).encode()
            writer.write(chunked("200 OK", answer))
        else:
            writer.write(ok(b"", status="404 Not Found"))
        await writer.drain()
        return True

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest_asyncio.fixture(loop_scope="function")
async def server() -> AsyncIterator[TinyServer]:
    tiny = TinyServer()
    listener = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    tiny.port = listener.sockets[0].getsockname()[1]
    try:
        yield tiny
    finally:
        listener.close()
        for task in tiny.handlers:
            task.cancel()
        await asyncio.gather(*tiny.handlers, return_exceptions=True)
        await listener.wait_closed()


@pytest.fixture
def conn(server: TinyServer) -> Iterator[Connection]:
    """A client connection to the tiny server, closed after the test."""
    connection = Connection(Endpoint.from_url(server.url()), connect_timeout_s=5.0)
    yield connection
    connection.close()


async def test_one_connection_carries_requests_of_every_framing(
    server: TinyServer, conn: Connection
) -> None:
    for path in ("/cl", "/chunked", "/cl", "/chunked"):
        response = await conn.request(get(path), 10.0)
        assert (response.status, response.body) == (200, BODY)
    assert conn.connects == 1 and server.connections == 1
    missing = await conn.request(get("/nope"), 10.0)
    assert (missing.status, missing.body) == (404, b"")


async def test_connection_close_and_a_server_side_close_reconnect(conn: Connection) -> None:
    assert (await conn.request(get("/close"), 10.0)).body == BODY
    assert (await conn.request(get("/cl"), 10.0)).body == BODY
    assert conn.connects == 2
    assert (await conn.request(get("/idle-close"), 10.0)).body == BODY
    # the server closed after answering: the next GET connects anew (or, if it was already on
    # its way when the close came, is sent once more on a new connection)
    assert (await conn.request(get("/cl"), 10.0, retry=True)).body == BODY
    assert conn.connects == 3


async def test_a_body_ended_by_the_close(conn: Connection) -> None:
    response = await conn.request(get("/eof"), 10.0)
    assert response.status == 200 and response.body == b"x" * 70_000
    assert not conn.is_open


async def test_a_dropped_request_fails_and_only_a_retryable_one_is_sent_twice(
    server: TinyServer, conn: Connection
) -> None:
    with pytest.raises(ServerDisconnected):
        await conn.request(get("/drop"), 10.0)
    assert server.requests.count("GET /drop") == 1
    with pytest.raises(ServerDisconnected):
        await conn.request(get("/drop"), 10.0, retry=True)
    assert server.requests.count("GET /drop") == 3
    assert (await conn.request(get("/cl"), 10.0)).body == BODY


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_replaced(
    conn: Connection,
) -> None:
    with pytest.raises(TimeoutError):
        await conn.request(get("/hang"), 0.2)
    assert (await conn.request(get("/cl"), 10.0)).body == BODY
    assert conn.connects == 2


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        conn = Connection(Endpoint.from_url(f"http://127.0.0.1:{port}"))
        with pytest.raises(ConnectError):
            await conn.request(get("/cl"), 5.0)


def lines() -> Iterator[tuple[tuple[str, int], ...]]:
    return itertools.repeat((("p-1", 1),))


@pytest.mark.parametrize("rate", [None, 200.0])
async def test_orders_are_placed_and_followed_to_their_answer(
    server: TinyServer, rate: float | None
) -> None:
    target = Target("tiny", server.url(), "k", "a")
    load = LoadConfig(concurrency=4, duration_s=30.0, drain_s=30.0, wait_s=1.0, rate=rate)
    outcomes = await run_orders(target, lines(), 40, load)
    assert len(outcomes) == 40
    assert all(o.accepted and o.answered and o.final_status in TERMINAL for o in outcomes)
    assert all(o.error is None for o in outcomes)
    assert sum(server.polls.values()) == 80  # one pending GET, one final GET per order
    assert server.connections <= 4  # keep-alive: at most one connection per buyer / pool slot
    if rate is None:
        assert all(o.t_scheduled is None for o in outcomes)
    else:
        due = sorted(o.t_scheduled or 0.0 for o in outcomes)
        gaps = [b - a for a, b in itertools.pairwise(due)]
        assert gaps == pytest.approx([1 / rate] * 39)
        for o in outcomes:
            assert o.t_scheduled is not None and o.t_start == o.t_scheduled <= o.t_sent


async def test_open_loop_orders_that_never_get_a_connection_are_not_started(
    server: TinyServer,
) -> None:
    server.never_final = True  # the only connection stays busy until the answer deadline
    target = Target("tiny", server.url(), "k", "a")
    load = LoadConfig(concurrency=1, duration_s=0.5, drain_s=0.5, wait_s=0.2, rate=10.0)
    outcomes = await run_orders(target, lines(), 100, load)
    assert len(outcomes) == 5  # due at 0.0, 0.1, ... 0.4
    first = next(o for o in outcomes if o.accepted)
    assert not first.answered
    rest = [o for o in outcomes if o is not first]
    assert [o.error for o in rest] == [NOT_STARTED] * 4
    assert all(o.http_status == 0 and o.t_sent == o.t_scheduled for o in rest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_bare_falcon_under_gunicorn_keeps_the_connection(tmp_path: Path) -> None:
    port = free_port()
    process = gunicorn(
        "falcon_bare", "bench.baselines.bare_app:get_app()", port, {}, 1, 4, tmp_path / "g.log"
    ).start()
    try:
        await asyncio.to_thread(wait_until_answers, f"http://127.0.0.1:{port}/healthz", process)
        conn = Connection(Endpoint.from_url(f"http://127.0.0.1:{port}"))
        for _ in range(20):
            response = await conn.request(get("/ping"), 10.0)
            assert response.status == 200 and json.loads(response.body) == {"ok": True}
        assert conn.connects == 1
        conn.close()
        ok_count, failed, _seconds = await hammer(f"http://127.0.0.1:{port}/ping", 0.5, 4)
        assert ok_count > 0 and failed == 0
    finally:
        process.stop()
