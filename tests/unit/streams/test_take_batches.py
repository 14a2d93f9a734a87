"""streams.faustinternals.take_batches on a real Faust stream (in-memory channel, no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.faustinternals import take_batches


def run_agent(
    values: list[int], max_: int, within: float, idle_s: float, waits: list[Any] | None = None
) -> list[list[int]]:
    app = faust.App("test-take-batches", broker="kafka://localhost:1", store="memory://")
    batches: list[list[int]] = []

    @app.agent()
    async def collect(stream: Any) -> None:
        if waits is not None:  # count the agent's waits (each one a wake-up when it returns)
            wait_for_stopped = stream.wait_for_stopped

            async def counted(*args: Any, **kwargs: Any) -> Any:
                waits.append(args)
                return await wait_for_stopped(*args, **kwargs)

            stream.wait_for_stopped = counted
        async for events in take_batches(stream, max_, within):
            batches.append([int(e.value) for e in events])

    async def main() -> None:
        async with collect.test_context() as agent:
            for value in values:
                await agent.put(value)
            await asyncio.sleep(idle_s)

    asyncio.run(main())
    return batches


def test_every_event_is_yielded_once_in_order_in_batches_of_at_most_max() -> None:
    batches = run_agent(list(range(7)), max_=3, within=0.05, idle_s=0.3)
    assert [v for batch in batches for v in batch] == list(range(7))
    assert all(1 <= len(batch) <= 3 for batch in batches)


def test_an_idle_agent_sleeps_until_an_event_comes() -> None:
    # faust-streaming's take_events waits in a loop of `within`: ~40 wake-ups in 0.2 s here
    waits: list[Any] = []
    assert run_agent([], max_=3, within=0.005, idle_s=0.2, waits=waits) == []
    # one wait for a first event, ended by the stream stopping, then the one after it
    assert len(waits) <= 2


def test_a_batch_whose_agent_raised_is_not_acked() -> None:
    # acked, its offsets could be committed before its effects were written: lost on restart
    app = faust.App("test-take-batches-raise", broker="kafka://localhost:1", store="memory://")
    acked: list[int] = []
    yielded: list[list[int]] = []

    @app.agent()
    async def fail_second(stream: Any) -> None:
        ack = stream.ack

        async def recorded(event: Any) -> Any:
            acked.append(int(event.value))
            return await ack(event)

        stream.ack = recorded
        async for events in take_batches(stream, 2, 0.05):
            yielded.append([int(e.value) for e in events])
            if len(yielded) == 2:
                raise RuntimeError("the agent failed on this batch")

    async def main() -> None:
        async with fail_second.test_context() as agent:
            for value in range(4):
                await agent.put(value)
                await asyncio.sleep(0.1)  # past the batch wait: one batch per value
            await asyncio.sleep(0.2)

    try:
        asyncio.run(main())
    except RuntimeError:
        pass
    assert len(yielded) == 2
    assert acked == yielded[0]  # the first batch, processed; never the failed one
