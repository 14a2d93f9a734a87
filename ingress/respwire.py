"""One Redis connection that only pipelines: hiredis packs the commands and parses the replies.

``ingress.redisbatch.BatchedRedis`` sends the ingress' hot commands (the admission script,
the stored response, the order reads) as one batch per round trip. Through redis-py's
``Pipeline`` a batch cost a Pipeline object and a command stack, and per command a wrapper,
a response callback and an ``asyncio.timeout`` (docs/decisions/0007). ``RespWire`` writes a
batch in one write and parses the replies in C (``hiredis.Reader``) as they arrive, in an
asyncio ``Protocol`` (no stream reader, no read per reply), under one timeout per batch.

Replies are RESP2 as hiredis gives them (bytes, int, list, None); an error reply becomes a
``redis.exceptions.ResponseError`` in its place, for its caller only. Connection set-up
(AUTH, SELECT) follows the URL as redis-py parses it. A connection error fails the batch
and the batch is sent once more on a new connection, as redis-py's ``Retry`` does in
``ingress.redisconn`` (every batched command is safe to repeat); a timeout closes the
connection and is not retried (the commands may have run).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

Command = tuple[Any, ...]
P = TypeVar("P", bound=asyncio.Protocol)


@dataclass(frozen=True)
class Endpoint:
    """Where a redis:// URL points, and the commands that open a connection (AUTH, SELECT)."""

    host: str
    port: int
    setup: tuple[Command, ...]

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        if not url.startswith("redis://"):
            raise ValueError("ingress.respwire speaks plain TCP: a redis:// URL")
        options = parse_url(url)
        setup: list[Command] = []
        password, user = options.get("password"), options.get("username")
        if password is not None:
            setup.append(("AUTH", user, password) if user else ("AUTH", password))
        if options.get("db"):
            setup.append(("SELECT", options["db"]))
        host, port = options.get("host", "localhost"), int(options.get("port", 6379))
        return cls(host, port, tuple(setup))

    async def open(self, protocol: Callable[[], P], timeout_s: float) -> P:
        """A TCP connection to Redis, spoken by ``protocol()`` (OSError, TimeoutError)."""
        async with asyncio.timeout(timeout_s):
            _, opened = await asyncio.get_running_loop().create_connection(
                protocol, self.host, self.port
            )
        return opened


def _pack(command: Command) -> bytes:
    return hiredis.pack_command(command)


class RespWire:
    """Send a list of commands, get their replies in order (see the module docstring)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 2.0):
        self.endpoint = Endpoint.from_url(url)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, commands: list[Command]) -> list[Any]:
        payload = b"".join([_pack(c) for c in commands])
        for attempt in (1, 2):
            protocol = await self._connected()
            try:
                async with asyncio.timeout(self._timeout_s):
                    replies = await protocol.request(payload, len(commands))
            except RedisConnectionError:
                self._drop(protocol)
                if attempt == 2:
                    raise
                continue
            except TimeoutError:
                self._drop(protocol)  # its replies would arrive for the next batch
                raise RedisTimeoutError(f"no reply from Redis within {self._timeout_s} s") from None
            return [_checked(reply) for reply in replies]
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._drop(self._protocol)

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.open:
            return protocol
        async with self._connecting:
            if self._protocol is not None and self._protocol.open:
                return self._protocol
            where = self.endpoint
            opened: _Protocol | None = None
            try:
                opened = await where.open(_Protocol, self._connect_timeout_s)
                async with asyncio.timeout(self._connect_timeout_s):
                    for command in where.setup:  # AUTH, SELECT
                        reply = (await opened.request(_pack(command), 1))[0]
                        if isinstance(reply, hiredis.ReplyError):
                            raise RedisConnectionError(f"{command[0]} refused: {reply}")
            except (OSError, TimeoutError, RedisConnectionError) as exc:
                if opened is not None:
                    opened.close()
                why = f"{type(exc).__name__}: {exc}"
                raise RedisConnectionError(
                    f"cannot connect to Redis at {where.host}:{where.port}: {why}"
                ) from None
            self._protocol = opened
            return opened

    def _drop(self, protocol: _Protocol) -> None:
        protocol.close()
        if self._protocol is protocol:
            self._protocol = None


def _checked(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        return ResponseError(str(reply))
    return reply


class _RespProtocol(asyncio.Protocol):
    """What both connections share: hiredis parses what arrives, ``_take`` consumes the
    parsed values, ``_ended`` hears that the connection is gone (closed or lost)."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self.open = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            self._take(self._reader)
        except hiredis.ProtocolError as exc:
            self._end(RedisConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(RedisConnectionError(f"Redis closed the connection ({exc!r})"))

    def close(self) -> None:
        self._end(RedisConnectionError("the Redis connection was closed"))

    def _end(self, why: Exception) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()
        self._ended(why)
        if not self.closed.done():
            self.closed.set_result(None)

    def _take(self, reader: hiredis.Reader) -> None:
        raise NotImplementedError

    def _ended(self, why: Exception) -> None:
        pass


class _Protocol(_RespProtocol):
    """Replies are matched to requests in order: each request waits for its count of them."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting: collections.deque[tuple[int, list[Any], asyncio.Future[list[Any]]]] = (
            collections.deque()
        )

    def request(self, payload: bytes, count: int) -> asyncio.Future[list[Any]]:
        if not self.open:
            raise RedisConnectionError("the Redis connection is closed")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((count, [], future))
        self.write(payload)
        return future

    def _take(self, reader: hiredis.Reader) -> None:
        waiting = self._waiting
        while waiting:
            count, replies, future = waiting[0]
            while len(replies) < count:
                reply = reader.gets()
                if reply is False:
                    return
                replies.append(reply)
            waiting.popleft()
            if not future.done():
                future.set_result(replies)

    def _ended(self, why: Exception) -> None:
        while self._waiting:
            _, _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(why)


class _PushProtocol(_RespProtocol):
    """Every parsed value goes to ``on_push`` as it arrives."""

    def __init__(self, on_push: Callable[[Any], None]) -> None:
        super().__init__()
        self._on_push = on_push

    def _take(self, reader: hiredis.Reader) -> None:
        while (push := reader.gets()) is not False:
            self._on_push(push)


class RespSubscriber:
    """One SUBSCRIBE connection: hiredis parses the pushes and they reach the callbacks as
    they arrive (no reader task, no ``get_message`` timeout per message).

    ``subscribe``/``unsubscribe`` write at once when connected; the channels wanted are
    kept, and a keeper task connects, subscribes them all again after a lost connection
    (every ``retry_s`` until Redis answers), as redis-py's ``PubSub`` does on reconnect.
    ``on_subscribed(channel)`` follows each confirmation, ``on_message(channel, data)``
    each message; channels and data are bytes."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        on_message: Callable[[bytes, bytes], None],
        on_subscribed: Callable[[bytes], None],
        connect_timeout_s: float = 2.0,
        retry_s: float = 0.5,
        name: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._name = name  # CLIENT SETNAME: who is who in CLIENT LIST
        self._connect_timeout_s = connect_timeout_s
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._retry_s = retry_s
        self._wanted: set[str] = set()
        self._protocol: _PushProtocol | None = None
        self._keeper: asyncio.Task[None] | None = None

    async def subscribe(self, *channels: str) -> None:
        self._wanted.update(channels)
        self._write(("SUBSCRIBE", *channels))

    async def unsubscribe(self, *channels: str) -> None:
        self._wanted.difference_update(channels)
        self._write(("UNSUBSCRIBE", *channels))

    def _write(self, command: Command) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep())
        protocol = self._protocol
        if protocol is not None and protocol.open:
            protocol.write(_pack(command))
        # else: the keeper subscribes self._wanted once connected

    async def _keep(self) -> None:
        where = self._endpoint
        while True:
            try:
                protocol = await where.open(
                    lambda: _PushProtocol(self._push), self._connect_timeout_s
                )
            except (OSError, TimeoutError) as exc:
                logger.warning("status subscriber: cannot connect to Redis: %r", exc)
                await asyncio.sleep(self._retry_s)
                continue
            for command in where.setup:  # their +OK (or error) arrive as pushes
                protocol.write(_pack(command))
            if self._name:
                protocol.write(_pack(("CLIENT", "SETNAME", self._name)))
            if self._wanted:
                protocol.write(_pack(("SUBSCRIBE", *self._wanted)))
            self._protocol = protocol
            await protocol.closed
            self._protocol = None
            logger.warning("status subscriber: connection lost; reconnecting")
            await asyncio.sleep(self._retry_s)

    def _push(self, push: Any) -> None:
        if isinstance(push, list) and len(push) == 3:
            kind = push[0]
            if kind == b"message":
                self._on_message(push[1], push[2])
            elif kind == b"subscribe":
                self._on_subscribed(push[1])
        elif isinstance(push, hiredis.ReplyError):
            logger.warning("status subscriber: Redis answered %s", push)
        # +OK of AUTH / SELECT / SETNAME, unsubscribe confirmations: nothing to do

    async def aclose(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        if self._protocol is not None:
            self._protocol.close()
