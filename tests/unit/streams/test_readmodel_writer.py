"""The stock agent's read-model writes: availability, then the applied admin commands.

An admin command's id leaves the product's pending set (the sold-out gate's, see
``ingress.admission``) in the same write that shows the product after the command, and
after it, so the gate never trusts an availability older than the command.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import fakeredis
import pytest

from orderstream.core.readmodel import Keys, decode_product
from streams.readmodel import ReadModelWriter
from streams.records import ProductState


def product(available: int, commands: int = -1, requests: int = -1) -> ProductState:
    return ProductState(
        product_id="sku-a",
        name="A",
        price=Decimal("1.00"),
        available=available,
        applied_commands=commands,
        applied_requests=requests,
    )


def test_an_applied_command_leaves_the_pending_set_with_the_product_write() -> None:
    async def run() -> None:
        server = fakeredis.FakeServer()
        redis = fakeredis.FakeAsyncRedis(server=server)
        pending = Keys().product_pending("sku-a")
        await redis.sadd(pending, "cmd-1", "cmd-2")
        writer = ReadModelWriter(redis, Keys())

        writer.enqueue_product(product(5))
        writer.enqueue_applied("sku-a", "cmd-1")
        assert await writer.flush() == 2

        shown = decode_product("sku-a", await redis.hgetall(Keys().product("sku-a")))
        assert shown is not None and shown["available"] == 5
        assert await redis.smembers(pending) == {b"cmd-2"}  # still on its way
        writer.enqueue_product(product(7))
        writer.enqueue_applied("sku-a", "cmd-2")
        await writer.flush()
        assert await redis.exists(pending) == 0  # nothing pending: the gate trusts 7

    asyncio.run(run())


def test_applied_commands_are_kept_for_the_next_flush_when_redis_fails() -> None:
    class Down(fakeredis.FakeAsyncRedis):
        def pipeline(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("redis down")

    async def run() -> None:
        writer = ReadModelWriter(Down(server=fakeredis.FakeServer()), Keys())
        writer.enqueue_product(product(1))
        writer.enqueue_applied("sku-a", "cmd-1")
        with pytest.raises(ConnectionError):
            await writer.flush()
        assert writer.applied == {"sku-a": {"cmd-1"}}
        assert "sku-a" in writer.products

    asyncio.run(run())


def test_an_older_product_write_never_replaces_a_newer_one() -> None:
    async def run() -> None:
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        available = Keys().product("sku-a")
        newer = ReadModelWriter(redis, Keys())  # the partition's new owner
        late = ReadModelWriter(redis, Keys())  # a worker that lost it, flushing late

        newer.enqueue_product(product(3, commands=10, requests=40))  # after a restock
        await newer.flush()
        late.enqueue_product(product(0, commands=9, requests=40))  # sold out, before it
        await late.flush()
        assert await redis.hget(available, "available") == b"3"

        late.enqueue_product(product(0, commands=10, requests=38))
        await late.flush()
        assert await redis.hget(available, "available") == b"3"
        newer.enqueue_product(product(2, commands=10, requests=41))  # a newer reservation
        await newer.flush()
        assert await redis.hget(available, "available") == b"2"

    asyncio.run(run())


class CountingWriter(ReadModelWriter):
    """Reports each flush its ``run`` makes: True when it wrote, False when it failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flushes: asyncio.Queue[bool] = asyncio.Queue()

    async def flush(self) -> int:
        try:
            written = await super().flush()
        except Exception:
            self.flushes.put_nowait(False)
            raise
        self.flushes.put_nowait(True)
        return written

    async def next_flush(self) -> bool:
        return await asyncio.wait_for(self.flushes.get(), 5.0)


def test_a_quiet_writer_never_flushes_and_wakes_for_the_first_enqueue() -> None:
    async def run() -> None:
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        writer = CountingWriter(redis, Keys(), interval=0.001)
        task = asyncio.create_task(writer.run())
        try:
            await asyncio.sleep(0.1)  # a hundred intervals with nothing to write
            assert writer.flushes.empty()
            writer.enqueue_product(product(7))
            assert await writer.next_flush()
            assert await redis.hget(Keys().product("sku-a"), "available") == b"7"
            assert writer.flushes.empty()
        finally:
            task.cancel()

    asyncio.run(run())


def test_a_failed_flush_is_retried_without_another_enqueue() -> None:
    class DownOnce(fakeredis.FakeAsyncRedis):
        failures = 1

        def pipeline(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if DownOnce.failures:
                DownOnce.failures -= 1
                raise ConnectionError("redis down")
            return super().pipeline(*args, **kwargs)

    async def run() -> None:
        redis = DownOnce(server=fakeredis.FakeServer())
        writer = CountingWriter(redis, Keys(), interval=0.001)
        task = asyncio.create_task(writer.run())
        try:
            writer.enqueue_product(product(4))
            assert not await writer.next_flush()
            assert await writer.next_flush()
            assert await redis.hget(Keys().product("sku-a"), "available") == b"4"
        finally:
            task.cancel()

    asyncio.run(run())
