"""ingress.respwire on the real Redis: BatchedRedis over the hiredis wire answers as it does
over redis-py's pipelines, each caller gets its own reply, and a lost connection is
replaced. Each test runs on asyncio's loop and on uvloop (the ingress' loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis
import uvloop

from ingress.readside import NoFallback, OrderReader, StatusWaiter
from ingress.redisbatch import BatchedRedis
from ingress.redisconn import connect
from ingress.respwire import Endpoint, RespSubscriber, RespWire
from orderstream.core.readmodel import SET_STATUS_LUA, Keys, status_args

T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(main: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    return run


def batched(url: str) -> BatchedRedis:
    return BatchedRedis(connect(url), wire=RespWire(url))


def test_answers_like_redis_py(run: Any, stack: Any, namespace: str, redis_client: Any) -> None:
    url = stack.settings.redis_url
    key, missing, hash_key = f"{namespace}k", f"{namespace}none", f"{namespace}h"
    redis_client.hset(hash_key, mapping={"a": "1", "b": "2"})

    async def main() -> list[Any]:
        r = batched(url)
        try:
            return [
                await r.set(key, b"v", ex=60),
                await r.set(key, b"w", nx=True),
                await r.hgetall(missing),
                await r.hgetall(hash_key),
                await r.eval("return {ARGV[1], tonumber(ARGV[2])}", 0, "x", 7),
                await r.eval("return redis.call('GET', KEYS[1])", 1, key),
            ]
        finally:
            await r.aclose()

    assert run(main()) == [True, None, {}, {b"a": b"1", b"b": b"2"}, [b"x", 7], b"v"]
    assert 0 < redis_client.ttl(key) <= 60


def test_an_error_reply_goes_to_its_caller_only(run: Any, stack: Any) -> None:
    async def main() -> list[Any]:
        r = batched(stack.settings.redis_url)
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


def test_concurrent_callers_each_get_their_own_reply(
    run: Any, stack: Any, namespace: str, redis_client: Any
) -> None:
    # large and small replies interleaved: some batches arrive over several reads
    for i in range(300):
        fields = 2000 if i % 50 == 0 else 1
        redis_client.hset(f"{namespace}h{i}", mapping={f"f{j}": f"{i}-{j}" for j in range(fields)})

    async def one(r: BatchedRedis, i: int) -> bool:
        got = await r.hgetall(f"{namespace}h{i}")
        fields = 2000 if i % 50 == 0 else 1
        return got == {f"f{j}".encode(): f"{i}-{j}".encode() for j in range(fields)}

    async def main() -> list[bool]:
        r = batched(stack.settings.redis_url)
        try:
            return await asyncio.gather(*(one(r, i) for i in range(300)))
        finally:
            await r.aclose()

    assert all(run(main()))


def test_a_connection_closed_by_the_server_is_replaced(
    run: Any, stack: Any, redis_client: Any
) -> None:
    async def main() -> None:
        wire = RespWire(stack.settings.redis_url)
        try:
            assert await wire.execute([("CLIENT", "SETNAME", "ingress-respwire-closed")]) == [b"OK"]
            killed = 0
            for info in redis_client.client_list():
                if info.get("name") == "ingress-respwire-closed":
                    killed += redis_client.client_kill_filter(_id=info["id"])
            assert killed == 1
            assert await wire.execute([("PING",), ("CLIENT", "GETNAME")]) == [b"PONG", None]
        finally:
            await wire.aclose()

    run(main())


def test_the_database_of_the_url_is_selected(run: Any, stack: Any, namespace: str) -> None:
    base = stack.settings.redis_url.rsplit("/", 1)[0]
    other = redis.Redis.from_url(f"{base}/3")
    key = f"{namespace}db3"

    async def main() -> None:
        wire = RespWire(f"{base}/3")
        try:
            assert await wire.execute([("SET", key, "in-3", "EX", 60)]) == [b"OK"]
        finally:
            await wire.aclose()

    try:
        run(main())
        assert other.get(key) == b"in-3"
    finally:
        other.delete(key)
        other.close()


def test_an_unreachable_redis_fails_every_caller_each_batch(run: Any) -> None:
    """Every caller of a batch hears it, and the next batch tries to connect again. (That the
    sender task outlives a failed batch is BatchedRedis' own: its unit tests.)"""

    async def main() -> list[list[Any]]:
        url = "redis://127.0.0.1:1/0"
        r = BatchedRedis(connect(url), wire=RespWire(url, connect_timeout_s=1))
        try:
            first = await asyncio.gather(r.set("k", 1), r.hgetall("h"), return_exceptions=True)
            second = await asyncio.gather(r.hgetall("h"), return_exceptions=True)
            return [first, second]
        finally:
            await r.aclose()

    for failed in run(main()):
        assert [type(f) for f in failed] == [redis.ConnectionError] * len(failed)
        assert all("cannot connect to Redis at 127.0.0.1:1" in str(f) for f in failed)


def test_a_refused_auth_fails_the_batch(run: Any, stack: Any) -> None:
    """The stack's Redis has no password: AUTH is refused, and so is the connection."""
    url = stack.settings.redis_url.replace("redis://", "redis://:wrong-password@")

    async def main() -> None:
        wire = RespWire(url)
        try:
            with pytest.raises(redis.ConnectionError, match="AUTH refused"):
                await wire.execute([("PING",)])
        finally:
            await wire.aclose()

    run(main())


def test_only_plain_tcp_urls() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RespWire("rediss://127.0.0.1:6379/0")


def test_a_long_poll_hears_the_published_status(
    run: Any, stack: Any, namespace: str, redis_client: Any
) -> None:
    """StatusWaiter over a client with a wire subscribes through RespSubscriber. The status
    is only published (not written), so the waiter can know it only from the message."""
    keys = Keys(namespace)
    order_id = "o-respwire"
    channel = keys.order_channel(order_id)
    redis_client.eval(
        SET_STATUS_LUA,
        2,
        keys.order(order_id),
        channel,
        *status_args("accepted", {"customer_id": "c", "items": []}),
    )
    asked: list[str] = []

    def done(status: str) -> bool:
        asked.append(status)
        return status == "cancelled"

    async def main() -> None:
        r = batched(stack.settings.redis_url)
        waiter = StatusWaiter(r, keys, recheck_s=120)
        reader = OrderReader(r, keys, NoFallback())
        try:
            waiting = asyncio.ensure_future(waiter.wait_until(reader, order_id, done, 3))
            for _ in range(2000):  # until Redis has the waiter's subscription (20 s at most)
                if dict(await r.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1:
                    break
                await asyncio.sleep(0.01)
            redis_client.publish(channel, "cancelled")
            await _within(waiting)
        finally:
            await waiter.close()
            await r.aclose()

    run(main())
    assert "cancelled" in asked


def test_the_subscriber_subscribes_again_after_a_lost_connection(
    run: Any, stack: Any, namespace: str, redis_client: Any
) -> None:
    name = f"{namespace}subscriber".replace(".", "-")
    first, second = f"{namespace}first", f"{namespace}second"

    async def main() -> list[tuple[bytes, bytes]]:
        messages: list[tuple[bytes, bytes]] = []
        confirmed: asyncio.Queue[bytes] = asyncio.Queue()
        got: asyncio.Queue[None] = asyncio.Queue()

        def on_message(channel: bytes, data: bytes) -> None:
            messages.append((channel, data))
            got.put_nowait(None)

        subscriber = RespSubscriber(
            Endpoint.from_url(stack.settings.redis_url),
            on_message=on_message,
            on_subscribed=confirmed.put_nowait,
            name=name,
        )
        try:
            await subscriber.subscribe(first, second)
            assert {await _within(confirmed.get()) for _ in range(2)} == {
                first.encode(),
                second.encode(),
            }
            killed = sum(
                redis_client.client_kill_filter(_id=info["id"])
                for info in redis_client.client_list()
                if info.get("name") == name
            )
            assert killed == 1
            # both channels are confirmed again on the new connection
            assert {await _within(confirmed.get()) for _ in range(2)} == {
                first.encode(),
                second.encode(),
            }
            await subscriber.unsubscribe(first)
            redis_client.publish(first, "dropped")  # after the UNSUBSCRIBE: not delivered
            redis_client.publish(second, "kept")
            await _within(got.get())
            return messages
        finally:
            await subscriber.aclose()

    assert run(main()) == [(second.encode(), b"kept")]


async def _within(awaitable: Any) -> Any:
    async with asyncio.timeout(20):  # a bound so a broken subscriber fails, not a timing
        return await awaitable
