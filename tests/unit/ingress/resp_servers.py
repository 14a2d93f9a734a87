"""In-process RESP servers on loopback sockets, so unit tests run the ingress' production
Redis path (``ingress.respwire``: real sockets, hiredis parsing) with no redis-server.

``fake_redis_server`` is fakeredis' own TCP server (a thread per connection, one
``FakeServer`` behind them). ``FaultyProxy`` sits between a client and that server on the
test's event loop and can drop connections or hold replies back, for the failure paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import fakeredis


@dataclass
class RespServer:
    url: str
    fake_server: fakeredis.FakeServer
    redis: fakeredis.FakeRedis  # the tests' direct view of the same data

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("redis://").split("/")[0].split(":")
        return host, int(port)


@contextlib.contextmanager
def fake_redis_server() -> Iterator[RespServer]:
    """fakeredis' TCP server on 127.0.0.1 (a free port), Lua included, for the block."""
    tcp = fakeredis.TcpFakeServer(("127.0.0.1", 0))
    thread = threading.Thread(
        target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-redis", daemon=True
    )
    thread.start()
    port = tcp.server_address[1]
    sync = fakeredis.FakeRedis(server=tcp.fake_server)
    try:
        yield RespServer(f"redis://127.0.0.1:{port}/0", tcp.fake_server, sync)
    finally:
        sync.close()
        tcp.shutdown()
        tcp.server_close()
        thread.join(timeout=5)


@dataclass
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    held: list[bytes] = field(default_factory=list)

    def close(self) -> None:
        self.client.close()
        self.upstream.close()


class FaultyProxy:
    """A TCP proxy to ``upstream`` that counts connections and, when told, closes them.

    ``drop_requests = n``: the next ``n`` requests close their connection instead of
    reaching the server (a connection Redis closed while it sat idle, not yet noticed).
    ``hold_replies = True``: replies are kept back until ``release()`` (a stalled Redis).
    ``drop_all()``: every open connection is closed now (Redis restarted).
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self.connections = 0
        self.drop_requests = 0
        self.hold_replies = False
        self._links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port); the redis:// URL that reaches the server here."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def drop_all(self) -> None:
        for link in self._links:
            link.close()

    def release(self) -> None:
        self.hold_replies = False
        for link in self._links:
            for data in link.held:
                link.client.write(data)
            link.held.clear()

    async def aclose(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        link = _Link(writer, up_writer)
        self._links.append(link)
        replies = asyncio.ensure_future(self._replies(link, up_reader))
        self._tasks.add(replies)
        try:
            while data := await reader.read(65536):
                if self.drop_requests > 0:
                    self.drop_requests -= 1
                    break
                up_writer.write(data)
        except ConnectionError:
            pass
        finally:
            link.close()
            self._links.remove(link)

    async def _replies(self, link: _Link, up_reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await up_reader.read(65536):
                if self.hold_replies:
                    link.held.append(data)
                else:
                    link.client.write(data)
