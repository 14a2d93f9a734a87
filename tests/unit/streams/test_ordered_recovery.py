"""The app's table recovery hands the stream partitions back in a safe order
(streams.faustinternals.OrderedRecovery; the why is in its docstring): the seek happens while
the consumer's flow is stopped and the stream partitions are still paused, and the flow
restarts only after flow control has cleared the stream queues."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from orderstream.core.settings import Settings
from streams.app import create_app
from streams.faustinternals import OrderedRecovery


def test_the_app_recovers_tables_with_ordered_recovery() -> None:
    app = create_app(Settings(), with_read_model=False)
    assert isinstance(app.tables.recovery, OrderedRecovery)


def test_partitions_are_sought_with_the_flow_stopped_and_resumed_after_the_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(Settings(), with_read_model=False)
    recovery = app.tables.recovery
    consumer = app.consumer
    stream = TP(Settings().topics("orders.requests"), 0)
    consumer.pause_partitions({stream})
    consumer.resume_flow()  # as Faust leaves it after the changelog restore
    steps: list[tuple[str, bool, bool]] = []

    def state(step: str) -> None:
        steps.append((step, consumer.flow_active, stream in consumer._get_active_partitions()))

    async def perform_seek() -> None:
        state("seek")

    async def nothing(*args: Any) -> None:
        return None

    monkeypatch.setattr(consumer, "assignment", lambda: {stream})
    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    # Recovery._wait also races a rebalance signal of the running service; not started here
    monkeypatch.setattr(recovery, "_wait", lambda coro, timeout=None: coro)
    monkeypatch.setattr(app.flow_control, "resume", lambda: state("clear"))
    monkeypatch.setattr(app._fetcher, "maybe_start", nothing)
    for table in recovery.tables.values():
        monkeypatch.setattr(table, "on_recovery_completed", nothing)

    asyncio.run(recovery.on_recovery_completed(app.consumer_generation_id))
    state("end")

    assert steps == [("seek", False, False), ("clear", False, False), ("end", True, True)]
