"""The stall watchdog's rule, with a fake clock and fake partition ends (pure logic)."""

from __future__ import annotations

import asyncio
import io
import signal
import threading
from collections.abc import Mapping
from types import SimpleNamespace

import pytest
from faust.types import TP

from streams import watchdog
from streams.watchdog import Progress, StallWatchdog, unread

A, B = TP("orders.requests", 0), TP("orders.reservations", 1)


class Harness:
    def __init__(self, ends: dict[TP, int], committed: dict[TP, int | None]) -> None:
        self.now = 0.0
        self.ends = ends
        self.busy = False
        self.reachable = True
        self.stops: list[str] = []
        self.progress = Progress()

        async def fetch_ends(partitions: list[TP]) -> Mapping[TP, int]:
            if not self.reachable:
                raise ConnectionError("broker down")
            return {tp: self.ends[tp] for tp in partitions}

        self.dog = StallWatchdog(
            self.progress,
            assigned=lambda: list(self.ends),
            ends=fetch_ends,
            committed=lambda: committed,
            busy=lambda: self.busy,
            stop=self.stops.append,
            stall_s=45.0,
            clock=lambda: self.now,
        )

    def check_at(self, now: float) -> None:
        self.now = now
        asyncio.run(self.dog.check())


def test_unread_counts_the_records_past_the_committed_offset() -> None:
    ends = {A: 10, B: 5}
    assert unread(ends, {A: 10, B: 5}) == {}
    assert unread(ends, {A: 3, B: 2}) == {A: 7, B: 3}
    assert unread(ends, {A: None}) == {A: 10, B: 5}


def test_stops_a_worker_that_holds_unread_records_and_processes_nothing() -> None:
    h = Harness({A: 90, B: 0}, committed={A: 40})
    h.check_at(10.0)
    h.check_at(44.0)
    assert h.stops == []
    h.check_at(46.0)
    assert len(h.stops) == 1 and "orders.requests[0]: 50" in h.stops[0]
    h.check_at(100.0)
    assert len(h.stops) == 1  # once


@pytest.mark.parametrize("case", ["progress", "caught_up", "busy", "broker_down"])
def test_does_not_stop_a_worker_that_is_not_stalled(case: str) -> None:
    h = Harness({A: 100}, committed={A: 100 if case == "caught_up" else 40})
    for now in range(5, 200, 5):
        if case == "progress":
            h.progress.events += 1
        h.busy = case == "busy"
        h.reachable = case != "broker_down"
        h.check_at(float(now))
    assert h.stops == []


def test_the_stall_clock_restarts_after_progress_and_after_a_rebalance() -> None:
    h = Harness({A: 100}, committed={A: 40})
    h.check_at(40.0)
    h.progress.events += 10
    h.check_at(41.0)
    h.check_at(80.0)
    assert h.stops == []
    h.busy = True
    h.check_at(85.0)
    h.busy = False
    h.check_at(125.0)
    assert h.stops == []
    h.check_at(131.0)
    assert len(h.stops) == 1


def test_stopping_writes_every_task_s_stack_before_the_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signals: list[int] = []
    timers: list[float] = []

    class _Timer:
        def __init__(self, interval: float, *args: object) -> None:
            timers.append(interval)
            self.daemon = False

        def start(self) -> None: ...

    monkeypatch.setattr(watchdog, "_stopping", threading.Event())
    monkeypatch.setattr(watchdog.threading, "Timer", _Timer)
    monkeypatch.setattr(watchdog.os, "kill", lambda pid, sig: signals.append(sig))
    stacks = io.StringIO()
    agent = SimpleNamespace(name="reserve_stock", actor_tracebacks=lambda: ["in add_batch"])

    async def stalled() -> None:
        waiting = asyncio.ensure_future(asyncio.Event().wait(), loop=asyncio.get_running_loop())
        await asyncio.sleep(0)
        watchdog.stop_worker("no event processed", stacks=stacks, agents=[agent])
        waiting.cancel()

    asyncio.run(stalled())
    assert "Event.wait" in stacks.getvalue()  # the task that waits, and where
    assert "AGENT reserve_stock\nin add_batch" in stacks.getvalue()
    assert signals == [signal.SIGTERM] and timers == [watchdog.HARD_EXIT_S]
    watchdog.stop_worker("again", stacks=stacks)
    assert signals == [signal.SIGTERM]  # once
