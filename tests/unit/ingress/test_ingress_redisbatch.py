"""ingress.redisbatch: concurrent callers share pipelines and each gets its own answer."""

from __future__ import annotations

import threading
from typing import Any

import fakeredis
import pytest
import redis

from ingress.redisbatch import BatchedRedis, _Call


class CountingRedis(fakeredis.FakeRedis):
    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        type(self).pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def raw() -> Any:
    return CountingRedis(server=fakeredis.FakeServer())


def test_answers_like_the_client_it_wraps(raw: Any) -> None:
    r = BatchedRedis(raw)
    assert r.set("k", b"v", ex=60) is True
    assert r.set("k", b"w", nx=True) is None
    assert r.hgetall("none") == {}
    raw.hset("h", mapping={"a": "1"})
    assert r.hgetall("h") == {b"a": b"1"}
    assert r.eval("return ARGV[1]", 0, "x") == b"x"
    assert r.get("k") == b"v"  # not batched: straight to the client
    assert raw.ttl("k") > 0


def test_a_command_error_goes_to_its_caller_only(raw: Any) -> None:
    r = BatchedRedis(raw)
    results: dict[int, Any] = {}
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = r.eval(
                "return ARGV[1]" if i % 2 else "return redis.error_reply('boom')", 0, str(i)
            )
        except redis.ResponseError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        if i % 2:
            assert results[i] == str(i).encode()
        else:
            assert isinstance(results[i], redis.ResponseError)


def test_concurrent_callers_share_pipelines(raw: Any) -> None:
    r = BatchedRedis(raw)
    CountingRedis.pipelines = 0
    barrier = threading.Barrier(50)
    answers: dict[int, Any] = {}

    def call(i: int) -> None:
        barrier.wait()
        r.set(f"k{i}", i)
        answers[i] = r.hgetall(f"none{i}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: {} for i in range(50)}
    assert [raw.get(f"k{i}") for i in range(50)] == [str(i).encode() for i in range(50)]
    assert CountingRedis.pipelines < 100  # 100 commands, fewer round trips


def test_a_connection_error_reaches_every_caller_and_the_sender_goes_on(raw: Any) -> None:
    r = BatchedRedis(raw)
    server = raw.connection_pool.connection_kwargs["server"]
    server.connected = False
    batch = [_Call("set", ("k", 1), {}), _Call("hgetall", ("h",), {})]  # one shared pipeline
    r._send(batch)
    for call in batch:
        assert call.done.is_set()
        assert isinstance(call.error, redis.ConnectionError)
    with pytest.raises(redis.ConnectionError):
        r.set("k", 1)
    server.connected = True
    assert r.set("k", 2) is True
