"""ingress.redisbatch: concurrent callers share pipelines and each gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis

from ingress.redisbatch import BatchedRedis


class CountingRedis(fakeredis.FakeAsyncRedis):
    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        type(self).pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def server() -> Any:
    return fakeredis.FakeServer()


@pytest.fixture
def raw(server: Any) -> Any:
    return CountingRedis(server=server)


def test_answers_like_the_client_it_wraps(raw: Any) -> None:
    async def main() -> None:
        r = BatchedRedis(raw)
        assert await r.set("k", b"v", ex=60) is True
        assert await r.set("k", b"w", nx=True) is None
        assert await r.hgetall("none") == {}
        await raw.hset("h", mapping={"a": "1"})
        assert await r.hgetall("h") == {b"a": b"1"}
        assert await r.eval("return ARGV[1]", 0, "x") == b"x"
        assert await r.get("k") == b"v"  # not batched: straight to the client
        assert await raw.ttl("k") > 0

    asyncio.run(main())


def test_a_command_error_goes_to_its_caller_only(raw: Any) -> None:
    async def main() -> list[Any]:
        r = BatchedRedis(raw)
        calls = [
            r.eval("return ARGV[1]" if i % 2 else "return redis.error_reply('boom')", 0, str(i))
            for i in range(8)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    for i, result in enumerate(results):
        if i % 2:
            assert result == str(i).encode()
        else:
            assert isinstance(result, redis.ResponseError)


def test_concurrent_callers_share_pipelines(raw: Any) -> None:
    async def call(r: BatchedRedis, i: int) -> Any:
        await r.set(f"k{i}", i)
        return await r.hgetall(f"none{i}")

    async def main() -> list[Any]:
        r = BatchedRedis(raw)
        CountingRedis.pipelines = 0
        return await asyncio.gather(*(call(r, i) for i in range(50)))

    assert asyncio.run(main()) == [{}] * 50
    check = fakeredis.FakeRedis(server=raw.connection_pool.connection_kwargs["server"])
    assert [check.get(f"k{i}") for i in range(50)] == [str(i).encode() for i in range(50)]
    assert CountingRedis.pipelines <= 4  # 100 commands in a handful of round trips


def test_a_connection_error_reaches_every_caller_and_the_sender_goes_on(
    raw: Any, server: Any
) -> None:
    async def main() -> None:
        r = BatchedRedis(raw)
        server.connected = False
        failed = await asyncio.gather(r.set("k", 1), r.hgetall("h"), return_exceptions=True)
        assert [type(f) for f in failed] == [redis.ConnectionError] * 2
        server.connected = True
        assert await r.set("k", 2) is True

    asyncio.run(main())
