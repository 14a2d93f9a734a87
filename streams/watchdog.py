"""A worker that owns unread records but decides nothing stops, to be restarted.

A stuck worker is worse than a dead one: it stays a healthy member of its group
(heartbeats, web), so its partitions are not reassigned, and every order on them stays
``accepted``. faust-streaming's recovery did this to restarted workers (about one SIGKILL
test run in ten) until ``streams.faustinternals.OrderedRecovery``; this is the backstop for
whatever else can hang an agent.

Every ``CHECK_EVERY_S`` each agent's watchdog compares the events the agent processed
with its assigned input partitions' ends. No progress for ``STALL_S`` (the setting
``ORDERSTREAM_WORKER_STALL_S``; 0 turns the watchdog off) while some of those partitions
hold records past the offsets this worker committed, outside a rebalance or a table
recovery, is a stall: the worker logs what it saw and every thread's and task's stack, and
stops (SIGTERM: Faust commits what was acked and leaves the group, so the successor joins
at once; after ``HARD_EXIT_S`` it exits 75 regardless). The supervisor starts it again;
replays are idempotent (DESIGN.md, "Where the at-least-once effects are made idempotent").
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from mode.utils.logging import cry

from streams.faustinternals import committed_offsets

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
STALL_S = 45.0
HARD_EXIT_S = 20.0
EXIT_STATUS = 75


@dataclass
class Progress:
    """Events the agents have processed; they add to it after every batch."""

    events: int = 0


def unread(ends: Mapping[Any, int], committed: Mapping[Any, int | None]) -> dict[Any, int]:
    """Records past the committed offset, per partition. Committed, not read: Faust's
    fetcher reads ahead into the streams' buffers whether or not the agent consumes them,
    while an offset is committed only after the agent has finished the event's batch."""
    lag = {}
    for tp, end in ends.items():
        position = committed.get(tp) or 0
        if end > position:
            lag[tp] = end - position
    return lag


class StallWatchdog:
    def __init__(
        self,
        progress: Progress,
        assigned: Callable[[], Iterable[Any]],
        ends: Callable[[list[Any]], Awaitable[Mapping[Any, int]]],
        committed: Callable[[], Mapping[Any, int | None]],
        busy: Callable[[], bool],
        stop: Callable[[str], None],
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = progress
        self._assigned = assigned
        self._ends = ends
        self._committed = committed
        self._busy = busy
        self._stop = stop
        self._stall_s = stall_s
        self._clock = clock
        self._seen = progress.events
        self._since = clock()
        self.stopped = False

    async def check(self) -> None:
        now = self._clock()
        if self._progress.events != self._seen or self._busy():
            self._seen, self._since = self._progress.events, now
            return
        if self.stopped or now - self._since < self._stall_s:
            return
        partitions = list(self._assigned())
        if not partitions:
            self._since = now
            return
        try:
            ends = await self._ends(partitions)
        except Exception as error:  # broker unreachable: not this worker's stall
            logger.warning("watchdog: cannot read partition ends: %s", error)
            return
        lag = unread(ends, self._committed())
        if not lag:
            self._since = now
            return
        self.stopped = True
        detail = ", ".join(f"{tp.topic}[{tp.partition}]: {n}" for tp, n in sorted(lag.items()))
        self._stop(
            f"no event processed for {now - self._since:.0f}s while {sum(lag.values())} "
            f"records wait on assigned partitions ({detail})"
        )


_stopping = threading.Event()


def stop_worker(reason: str, stacks: IO[str] | None = None, agents: Iterable[Any] = ()) -> None:
    """Log, write every thread's and task's stack and where each agent waits, then stop
    gracefully (SIGTERM), with a hard exit if that does not finish. A stalled worker leaves
    no other trace (each task waits quietly): the stacks show what it waits on, as
    ``kill -USR1`` would, before the restart erases it. A task's stack stops at an agent
    (Faust's actor), so each agent's own coroutine is written too (``actor_tracebacks``)."""
    logger.critical("watchdog: worker stalled, stopping to be restarted: %s", reason)
    if _stopping.is_set():
        return
    _stopping.set()
    out = stacks if stacks is not None else sys.stderr
    try:
        cry(file=out)
        for agent in agents:
            for traceback in agent.actor_tracebacks():
                print(f"AGENT {agent.name}\n{traceback}", file=out)
    except Exception as error:  # the stop must not depend on the dump
        logger.warning("watchdog: cannot write the stacks: %s", error)
    timer = threading.Timer(HARD_EXIT_S, os._exit, (EXIT_STATUS,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)


def watch(
    app: Any, progress: Progress, source_topics: Iterable[str], stall_s: float = STALL_S
) -> StallWatchdog:
    """The watchdog of one agent of a Faust app (its consumer is looked up when checked)."""
    topics = set(source_topics)

    def assigned() -> list[Any]:
        return [tp for tp in app.consumer.assignment() if tp.topic in topics]

    async def ends(partitions: list[Any]) -> Mapping[Any, int]:
        return await app.consumer.highwaters(*partitions)

    def busy() -> bool:
        return bool(app.rebalancing or app.in_recovery)

    return StallWatchdog(
        progress,
        assigned,
        ends,
        lambda: committed_offsets(app),
        busy,
        lambda reason: stop_worker(reason, agents=list(app.agents.values())),
        stall_s=stall_s,
    )
