"""The app's table recovery stops the consumer's flow before Faust hands the stream
partitions back (streams.faustutil.OrderedRecovery; the why is in its docstring)."""

from __future__ import annotations

import asyncio

import pytest
from faust.tables.recovery import Recovery

from orderstream.settings import Settings
from streams.app import create_app
from streams.faustutil import OrderedRecovery


def test_the_app_recovers_tables_with_ordered_recovery() -> None:
    app = create_app(Settings(), with_read_model=False)
    assert isinstance(app.tables.recovery, OrderedRecovery)


def test_flow_is_stopped_when_faust_resumes_partitions_and_seeks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(Settings(), with_read_model=False)
    recovery = app.tables.recovery
    consumer = app.consumer
    consumer.resume_flow()  # as Faust leaves it after the changelog restore
    seen: list[bool] = []

    async def base(self: Recovery, generation_id: int = 0) -> None:
        seen.append(self.app.consumer.flow_active)

    monkeypatch.setattr(Recovery, "on_recovery_completed", base)
    asyncio.run(recovery.on_recovery_completed(1))
    assert seen == [False]
