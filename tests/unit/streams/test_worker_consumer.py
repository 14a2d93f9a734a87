"""The workers' consumer delivers inline until a delivery blocks (streams.faustconsumer).

The whole consumer runs in every integration test with a worker; these pin the parts
that are plain asyncio: stepping a coroutine outside a task, handing the rest to one,
and the fetcher's wait for room in the stream buffers.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from orderstream.core.settings import Settings
from streams.app import create_app
from streams.faustconsumer import (
    BUSY_FETCH_ROUND_S,
    FETCH_MAX_WAIT_MS,
    FETCH_MIN_BYTES,
    IDLE_FETCH_MAX_WAIT_MS,
    IDLE_FETCH_MIN_BYTES,
    IDLE_FETCH_ROUND_S,
    QUIET_BEFORE_IDLE_S,
    WorkerConsumer,
    step_inline,
)


async def test_a_delivery_that_does_not_block_runs_to_the_end_inline() -> None:
    done: list[str] = []

    async def deliver() -> None:
        done.append("delivered")

    assert step_inline(deliver()) is None
    assert done == ["delivered"]


async def test_a_blocked_delivery_is_finished_by_the_task_that_awaits_the_rest() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def deliver() -> str:
        steps.append("before")
        value = await gate
        steps.append(f"after {value}")
        await asyncio.sleep(0)  # a bare yield after the first block
        return "result"

    rest = step_inline(deliver())
    assert rest is not None and steps == ["before"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("open")
    assert await task == "result"
    assert steps == ["before", "after open"]


async def test_an_error_before_the_first_block_is_raised_inline() -> None:
    async def deliver() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        step_inline(deliver())


async def test_cancelling_the_rest_cancels_the_delivery_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def deliver() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    rest = step_inline(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert gate.cancelled()  # the task cancelled the future the delivery waited on


def _consumer(suspended: bool) -> Any:
    waits: list[tuple[Any, ...]] = []
    flow = asyncio.Event()
    if suspended:
        flow.set()

    async def wait_first(*coros: Any) -> None:
        waits.append(coros)
        await coros[0]
        for coro in coros[1:]:
            coro.close()

    return SimpleNamespace(suspend_flow=flow, wait_first=wait_first, waits=waits, delivered=0)


async def test_deliver_uses_faust_wait_only_when_the_delivery_blocks() -> None:
    consumer = _consumer(suspended=False)
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    delivered: list[int] = []

    async def callback(message: int) -> None:
        if message == 2:
            await gate
        delivered.append(message)

    await WorkerConsumer.deliver(consumer, callback, 1)  # type: ignore[arg-type]
    assert delivered == [1] and consumer.waits == []
    asyncio.get_running_loop().call_soon(gate.set_result, None)
    await WorkerConsumer.deliver(consumer, callback, 2)  # type: ignore[arg-type]
    assert delivered == [1, 2] and len(consumer.waits) == 1


async def test_deliver_while_the_flow_is_suspended_is_faust_s_own() -> None:
    consumer = _consumer(suspended=True)
    delivered: list[int] = []

    async def callback(message: int) -> None:
        delivered.append(message)

    await WorkerConsumer.deliver(consumer, callback, 7)  # type: ignore[arg-type]
    assert delivered == [7] and len(consumer.waits) == 1


async def test_the_fetcher_waits_until_every_buffer_is_at_most_half_full() -> None:
    full: asyncio.Queue[int] = asyncio.Queue(maxsize=8)
    for i in range(5):
        full.put_nowait(i)
    other: asyncio.Queue[int] = asyncio.Queue(maxsize=8)
    consumer = SimpleNamespace(
        app=SimpleNamespace(topics=[SimpleNamespace(queue=full), SimpleNamespace(queue=other)])
    )
    waiting = asyncio.ensure_future(WorkerConsumer.room_in_buffers(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not waiting.done()  # 5 of 8 is over half
    full.get_nowait()
    await asyncio.wait_for(waiting, timeout=1)  # 4 of 8 is half: room


async def test_the_workers_aiokafka_consumer_is_built_with_prompt_fetch_options() -> None:
    app = create_app(Settings.from_env(), store="memory://", with_read_model=False)
    assert isinstance(app.consumer, WorkerConsumer)
    thread = app.consumer._new_consumer_thread()
    consumer = thread._create_worker_consumer(app.transport)  # built, not started
    try:
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
        assert consumer._fetch_min_bytes == FETCH_MIN_BYTES
    finally:
        await consumer.stop()


def test_rounds_that_delivered_nothing_for_a_quiet_spell_make_the_next_fetches_long_polls() -> None:
    fetcher = SimpleNamespace(
        _fetch_max_wait_ms=FETCH_MAX_WAIT_MS, _fetch_min_bytes=FETCH_MIN_BYTES
    )
    consumer = SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)),
        delivered=0,
        _delivered_before=0,
        _idle_fetches=False,
        _quiet_since=None,
    )
    now = [50.0]

    def round_delivering(messages: int, after_s: float = BUSY_FETCH_ROUND_S) -> tuple:
        now[0] += after_s
        consumer.delivered += messages
        WorkerConsumer.pace_fetches(consumer, now[0])  # type: ignore[arg-type]
        round_s = WorkerConsumer.fetch_round_s(consumer)  # type: ignore[arg-type]
        return fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes, round_s

    # short fetches come with short rounds, so a quiet spell soon ends them
    busy, idle = (
        (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, BUSY_FETCH_ROUND_S),
        (IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES, IDLE_FETCH_ROUND_S),
    )
    assert BUSY_FETCH_ROUND_S < IDLE_FETCH_ROUND_S
    # one empty round (a short fetch answered after its round gave up) is not a quiet spell
    assert round_delivering(0) == busy
    assert round_delivering(7) == busy
    assert round_delivering(0) == busy
    assert round_delivering(0, QUIET_BEFORE_IDLE_S - 0.05) == busy
    assert round_delivering(0, 0.05) == idle
    assert round_delivering(0, IDLE_FETCH_ROUND_S) == idle
    assert round_delivering(3) == busy  # the first record after a quiet spell
    assert round_delivering(500) == busy
    assert round_delivering(0) == busy  # the spell starts again from this round
    assert round_delivering(0, QUIET_BEFORE_IDLE_S) == idle


def test_pacing_waits_for_a_started_fetcher() -> None:
    consumer = SimpleNamespace(
        _thread=SimpleNamespace(_consumer=None),
        delivered=0,
        _delivered_before=0,
        _idle_fetches=False,
        _quiet_since=0.0,  # quiet for long enough: the fetches should long-poll
    )
    WorkerConsumer.pace_fetches(consumer, QUIET_BEFORE_IDLE_S)  # type: ignore[arg-type]
    assert consumer._idle_fetches is False  # not started: set once it is
