"""A lean HTTP/1.1 keep-alive client for the load generator.

One ``Connection`` is one TCP connection that carries one request at a time: the caller hands
it a request already formatted as bytes and gets back ``(status, body)``. Responses are parsed
by ``httptools`` (llhttp, the parser uvicorn uses): Content-Length and chunked bodies,
keep-alive per HTTP version and ``Connection`` header; a body delimited by the end of the
connection (no length, not chunked) ends when the server closes. After a response the server
does not keep alive, or when the server closed the idle connection, the next request connects
anew; so does a request after an error (the connection is dropped).

Errors: ``ConnectError`` (could not connect), ``ServerDisconnected`` (closed before a whole
response), ``BadResponse`` (the parser refused the bytes), ``TimeoutError`` (no whole response
in time; the connection is dropped), or the ``OSError`` of a failed send.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools


class HttpClientError(Exception):
    """Any failure of the lean client that is not a timeout or a plain OSError."""


class ConnectError(HttpClientError):
    """The TCP connection could not be opened (refused, unreachable, or not in time)."""


class ServerDisconnected(HttpClientError):
    """The server closed the connection before a whole response."""


class BadResponse(HttpClientError):
    """The bytes received are not an HTTP/1.x response."""


class Response(NamedTuple):
    status: int
    body: bytes


class Endpoint(NamedTuple):
    """Where to connect, and what goes in the request line and ``Host`` header."""

    host: str
    port: int
    host_header: str  # host[:port] as in the URL
    path_prefix: str  # the URL's path without a trailing slash ("" for none)

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port] URLs are supported: {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.netloc, parts.path.rstrip("/"))


class _Protocol(asyncio.Protocol):
    """Feeds received bytes to the parser and completes the one pending request's future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.body: list[bytes] = []
        self.closed = False
        self.received = False  # any byte of the current response arrived
        self.headers_done = False
        self.framed = False  # Content-Length or Transfer-Encoding: the parser knows the end
        self.keep_alive = True

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked for (e.g. a 408 on an idle connection)
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(str(exc) or type(exc).__name__))

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.framed and exc is None:
            # A body delimited by the end of the connection: this is its end.
            self._complete(self.parser.get_status_code())
            return
        self.waiter = None
        error = ServerDisconnected(str(exc) if exc else "connection closed before a response")
        waiter.set_exception(error)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim response: the real one follows
            self.headers_done = self.framed = False
            self.body = []
            return
        self._complete(status)

    # ours

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Response]:
        if self.transport is None or self.closed or self.transport.is_closing():
            raise ServerDisconnected("connection closed before the request")
        self.waiter = waiter = loop.create_future()
        self.body = []
        self.received = self.headers_done = self.framed = False
        self.transport.write(data)
        return waiter

    def _complete(self, status: int) -> None:
        waiter, self.waiter = self.waiter, None
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body = []
        if not self.keep_alive:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, body))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.close(abort=True)
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def expire(self) -> None:
        self._fail(TimeoutError("no whole response in time"))

    def close(self, abort: bool = False) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class Connection:
    """One keep-alive connection to ``endpoint``, opened on first use and after a close."""

    def __init__(self, endpoint: Endpoint, connect_timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.connect_timeout_s = connect_timeout_s
        self.connects = 0  # how many times a TCP connection was opened
        self._protocol: _Protocol | None = None

    @property
    def is_open(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Protocol:
        protocol = _Protocol()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: protocol, self.endpoint.host, self.endpoint.port),
                timeout=min(self.connect_timeout_s, max(0.0, timeout_s)),
            )
        except TimeoutError as exc:
            raise ConnectError(f"connect to {self.endpoint.host_header}: timed out") from exc
        except OSError as exc:
            raise ConnectError(f"connect to {self.endpoint.host_header}: {exc}") from exc
        self.connects += 1
        self._protocol = protocol
        return protocol

    async def request(self, data: bytes, timeout_s: float, retry: bool = False) -> Response:
        """Send ``data`` (one whole request) and return the response.

        ``timeout_s`` covers connecting, sending and the whole response. ``retry``: when the
        connection fails (OSError, closed by the server) before any byte of the response came
        back, send once more on a new connection (only for requests safe to repeat, as
        aiohttp does for idempotent methods).
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_s
        attempts = 2 if retry else 1
        for attempt in range(1, attempts + 1):
            protocol = self._protocol
            if protocol is None or protocol.closed:
                protocol = await self._connect(loop, deadline - time.monotonic())
            try:
                return await self._exchange(loop, protocol, data, deadline - time.monotonic())
            except TimeoutError:
                raise
            except (ServerDisconnected, OSError):
                if attempt == attempts or protocol.received:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, protocol: _Protocol, data: bytes, timeout_s: float
    ) -> Response:
        waiter = protocol.send(data, loop)
        timer = loop.call_later(max(0.0, timeout_s), protocol.expire)
        try:
            return await waiter
        finally:
            timer.cancel()
            if waiter.cancelled() or not waiter.done():
                protocol.close(abort=True)  # cancelled while waiting: its response is orphaned

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


class Pool:
    """At most ``size`` connections to one endpoint, each lent to one user at a time.

    ``acquire_nowait()`` lends an idle connection (the most recently returned first) or a new
    one while fewer than ``size`` exist; ``acquire(deadline)`` waits, first come first served,
    for one to be returned, until ``deadline`` (monotonic seconds; None when there is none).
    """

    def __init__(self, endpoint: Endpoint, size: int, connect_timeout_s: float = 10.0) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self.endpoint = endpoint
        self.size = size
        self.connect_timeout_s = connect_timeout_s
        self.created: list[Connection] = []
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()

    @property
    def in_use(self) -> int:
        return len(self.created) - len(self._idle)

    def acquire_nowait(self) -> Connection | None:
        if self._idle:
            return self._idle.pop()
        if len(self.created) < self.size:
            connection = Connection(self.endpoint, self.connect_timeout_s)
            self.created.append(connection)
            return connection
        return None

    async def acquire(self, deadline: float | None = None) -> Connection | None:
        """A connection, or None when ``deadline`` passed first."""
        connection = self.acquire_nowait()
        if connection is not None:
            return connection
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(0.0, deadline - time.monotonic()), _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:
                self.release(handed)  # handed over just as we were cancelled
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter.cancelled() or waiter.result() is None:  # still queued: leave the queue
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def release(self, connection: Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self.created:
            connection.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()


def _expire(waiter: asyncio.Future[Connection | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
