"""The ingress' production Redis path over a real loopback socket: ``BatchedRedis`` over
``RespWire`` and the ``RespSubscriber``, against fakeredis' TCP server (no redis-server),
with a ``FaultyProxy`` in between for the failures. Each test runs on asyncio's loop and on
uvloop (the ingress' loop). (Against the real Redis: tests/integration/ingress.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis
import uvloop
from resp_servers import FaultyProxy, RespServer, fake_redis_server

from ingress.redisbatch import BatchedRedis
from ingress.redisconn import connect
from ingress.respwire import Endpoint, RespSubscriber, RespWire

T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(main: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(main, 10))  # a broken wire fails, not hangs

    return run


@pytest.fixture
def server() -> Iterator[RespServer]:
    with fake_redis_server() as server:
        yield server


class CountingWire(RespWire):
    """A RespWire that records the batches it is given."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.batches: list[int] = []

    async def execute(self, commands: list[Any]) -> list[Any]:
        self.batches.append(len(commands))
        return await super().execute(commands)


def test_a_batch_is_answered_as_redis_py_answers(run: Any, server: RespServer) -> None:
    server.redis.hset("h", mapping={"a": "1", "b": "2"})
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("set", ("k", b"v"), {"ex": 60}),
        ("set", ("k", b"w"), {"nx": True}),
        ("hgetall", ("none",), {}),
        ("hgetall", ("h",), {}),
        ("eval", ("return {ARGV[1], tonumber(ARGV[2])}", 0, "x", 7), {}),
        ("eval", ("return redis.call('GET', KEYS[1])", 1, "k"), {}),
        ("eval", ("return nil", 0), {}),
    ]

    async def main() -> tuple[list[Any], list[Any], list[int]]:
        plain = connect(server.url)  # redis-py, one command at a time: the reference
        wire = CountingWire(server.url)
        batched = BatchedRedis(connect(server.url), wire=wire)
        try:
            ours = await asyncio.gather(*(getattr(batched, n)(*a, **kw) for n, a, kw in calls))
            server.redis.delete("k")
            theirs = [await getattr(plain, n)(*a, **kw) for n, a, kw in calls]
            return ours, theirs, wire.batches
        finally:
            await batched.aclose()
            await plain.aclose()

    ours, theirs, batches = run(main())
    assert ours == theirs == [True, None, {}, {b"a": b"1", b"b": b"2"}, [b"x", 7], b"v", None]
    assert batches == [len(calls)]  # one write, one round trip
    assert 0 < server.redis.ttl("k") <= 60


def test_concurrent_callers_share_batches_and_each_gets_its_own_reply(
    run: Any, server: RespServer
) -> None:
    for i in range(100):
        server.redis.hset(f"h{i}", mapping={f"f{j}": f"{i}-{j}" for j in range(1 + i % 7)})

    async def one(r: BatchedRedis, i: int) -> bool:
        got = await r.hgetall(f"h{i}")
        return got == {f"f{j}".encode(): f"{i}-{j}".encode() for j in range(1 + i % 7)}

    async def main() -> tuple[list[bool], list[int]]:
        wire = CountingWire(server.url)
        r = BatchedRedis(connect(server.url), wire=wire)
        try:
            return await asyncio.gather(*(one(r, i) for i in range(100))), wire.batches
        finally:
            await r.aclose()

    answers, batches = run(main())
    assert all(answers)
    assert sum(batches) == 100 and len(batches) <= 4


def test_an_error_reply_goes_to_its_caller_only(run: Any, server: RespServer) -> None:
    async def main() -> list[Any]:
        r = BatchedRedis(connect(server.url), wire=RespWire(server.url))
        try:
            return await asyncio.gather(
                *(
                    r.eval("return ARGV[1]" if i % 2 else "return redis.error_reply('boom')", 0, i)
                    for i in range(10)
                ),
                return_exceptions=True,
            )
        finally:
            await r.aclose()

    for i, result in enumerate(run(main())):
        if i % 2:
            assert result == str(i).encode()
        else:
            assert isinstance(result, redis.ResponseError) and "boom" in str(result)


def test_a_dropped_connection_sends_the_batch_once_more_on_a_new_one(
    run: Any, server: RespServer
) -> None:
    async def main() -> tuple[list[Any], int]:
        proxy = FaultyProxy(server.address)
        wire = RespWire(await proxy.start())
        try:
            assert await wire.execute([("PING",)]) == [b"PONG"]
            proxy.drop_requests = 1  # the open connection is dead; the wire does not know yet
            replies = await wire.execute([("INCR", "n"), ("GET", "n")])
            return replies, proxy.connections
        finally:
            await wire.aclose()
            await proxy.aclose()

    replies, connections = run(main())
    assert replies == [1, b"1"]  # ran once, on the second connection
    assert connections == 2


def test_a_batch_whose_connection_drops_twice_fails_and_the_next_one_reconnects(
    run: Any, server: RespServer
) -> None:
    async def main() -> tuple[int, list[Any]]:
        proxy = FaultyProxy(server.address)
        r = BatchedRedis(connect(server.url), wire=RespWire(await proxy.start()))
        try:
            proxy.drop_requests = 2  # the batch, and the batch sent again
            failed = await asyncio.gather(r.set("k", 1), r.hgetall("h"), return_exceptions=True)
            assert [type(f) for f in failed] == [redis.ConnectionError] * 2
            tried = proxy.connections
            return tried, [await r.set("k", 2), server.redis.get("k")]
        finally:
            await r.aclose()
            await proxy.aclose()

    tried, after = run(main())
    assert tried == 2  # the batch was sent once more, not again and again
    assert after == [True, b"2"]


def test_a_timeout_drops_the_connection_and_is_not_retried(run: Any, server: RespServer) -> None:
    async def main() -> tuple[list[Any], int]:
        proxy = FaultyProxy(server.address)
        wire = RespWire(await proxy.start(), timeout_s=0.3)
        try:
            assert await wire.execute([("PING",)]) == [b"PONG"]
            proxy.hold_replies = True  # Redis runs the command; its reply does not come back
            with pytest.raises(redis.TimeoutError):
                await wire.execute([("INCR", "n")])
            proxy.release()  # a late reply on the old connection must reach nobody
            replies = await wire.execute([("INCR", "n")])
            return replies, proxy.connections
        finally:
            await wire.aclose()
            await proxy.aclose()

    replies, connections = run(main())
    assert replies == [2]  # the timed-out INCR ran once and was not sent again
    assert connections == 2  # the timed-out connection was dropped, a new one opened


def test_the_subscriber_delivers_messages_and_subscribes_again_after_a_lost_connection(
    run: Any, server: RespServer
) -> None:
    async def main() -> list[tuple[bytes, bytes]]:
        proxy = FaultyProxy(server.address)
        url = await proxy.start()
        messages: list[tuple[bytes, bytes]] = []
        got: asyncio.Queue[None] = asyncio.Queue()
        confirmed: asyncio.Queue[bytes] = asyncio.Queue()

        def on_message(channel: bytes, data: bytes) -> None:
            messages.append((channel, data))
            got.put_nowait(None)

        subscriber = RespSubscriber(
            Endpoint.from_url(url),
            on_message=on_message,
            on_subscribed=confirmed.put_nowait,
            retry_s=0.05,
            name="ingress-status",
        )
        try:
            await subscriber.subscribe("a", "b")
            assert {await confirmed.get(), await confirmed.get()} == {b"a", b"b"}
            server.redis.publish("a", "1")
            await got.get()
            await subscriber.unsubscribe("b")
            proxy.drop_all()
            assert await confirmed.get() == b"a"  # on the new connection: what is still wanted
            assert proxy.connections == 2
            server.redis.publish("b", "not wanted")  # would arrive first if b were subscribed
            server.redis.publish("a", "2")
            await got.get()
            return messages
        finally:
            await subscriber.aclose()
            await proxy.aclose()

    assert run(main()) == [(b"a", b"1"), (b"a", b"2")]
