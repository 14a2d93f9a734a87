"""The workers' Faust consumer: prompt fetches paced to the load, and delivery without a
task per message.

The parts that reach into faust-streaming (the fetch options, the fetch loop) are
``streams.faustinternals.HookedConsumer``; this module decides what they are set to.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

from faust.types import Message

from streams.faustinternals import HookedConsumer, set_fetch_options

#: A fetch request returns once FETCH_MIN_BYTES are ready or after FETCH_MAX_WAIT_MS
#: (Faust hard-codes 1500 ms and aiokafka's default is 1 byte).
FETCH_MAX_WAIT_MS = 20
FETCH_MIN_BYTES = 16 * 1024

#: An idle worker's fetch request returns at its first record, or after IDLE_FETCH_MAX_WAIT_MS.
IDLE_FETCH_MAX_WAIT_MS = 2000
IDLE_FETCH_MIN_BYTES = 1

#: How long a fetch round waits for records with the short fetches, and with the long polls.
#: A round that delivers returns at once.
BUSY_FETCH_ROUND_S = 0.1
IDLE_FETCH_ROUND_S = 1.0
#: How long rounds must deliver nothing before the fetches long-poll (sinks.fetchpace: a
#: short fetch answered after its round gave up would leave the busy partitions out of the
#: long request that follows, for up to IDLE_FETCH_MAX_WAIT_MS).
QUIET_BEFORE_IDLE_S = 0.5

#: How often a fetcher waiting for room in the stream buffers looks again.
ROOM_POLL_S = 0.001


class WorkerConsumer(HookedConsumer):
    """Faust's aiokafka consumer with prompt fetches and direct delivery.

    **Prompt fetches.** Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``.
    aiokafka has one fetch request in flight per broker and leaves partitions with
    buffered records out of it, so once a busy partition's prefetched records are drained
    its next records wait for the in-flight request on the *quiet* partitions to expire:
    measured, a stall of 1.0-1.5 s every ~2 s on a backlog (agent idle, event loop idle).
    So the wait is short. With aiokafka's ``fetch_min_bytes=1`` a busy worker sent a fetch
    per trickle of records; asking the broker to gather 16 KiB (or 20 ms) cuts the workers'
    CPU per order end to end (docs/decisions/0009-faust-consumer.md). The price: up to
    20 ms on a quiet partition's next record, and an idle worker sends ~50 empty fetches/s.

    **Direct delivery.** Faust's fetcher hands each message to the conductor with
    ``await self.wait_first(callback(message), self.suspend_flow.wait())``: four tasks,
    an ``asyncio.wait`` and three cancellations per message, so that a delivery blocked
    on a full stream buffer gives way when a rebalance suspends the flow. Nearly every
    delivery does not block (it decodes the message and puts it in a buffer with room).
    The fetch loop (``HookedConsumer._drain_messages``) is Faust's, except that it runs
    the delivery coroutine's first step inline (``deliver``) and falls back to Faust's
    ``wait_first`` only when that step blocks or the flow is already suspended. On a
    Faust agent that only forwards its input (``python -m bench.components.streams --only
    floor``) the fetcher's per-message cost dominated (docs/decisions/0009-faust-consumer.md).

    **Paced to the load.** Those short waits cost an idle worker ~50 empty fetches a second
    (and the broker as many to answer). So once fetch rounds have delivered nothing for
    ``QUIET_BEFORE_IDLE_S``, the next requests wait up to ``IDLE_FETCH_MAX_WAIT_MS`` for one
    byte: the broker answers as soon as a record arrives, so the first order after a quiet
    spell waits no longer than before. The first round that delivers sets the short waits
    back. A round with the short waits lasts at most ``BUSY_FETCH_ROUND_S``, not Faust's
    second. One empty round is not a quiet spell: under load a short fetch answered after
    its round gave up lands while the next request is built, and leaves the partitions it
    carried (the busy ones) out of it; a long request would hold them for its two seconds
    (docs/decisions/0024-idle-fetches.md).
    """

    fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    fetch_min_bytes = FETCH_MIN_BYTES
    delivered = 0  # messages handed to the conductor so far
    _delivered_before = 0  # ... when the last fetch round began
    _idle_fetches = False
    _quiet_since: float | None = None  # when the rounds began to deliver nothing

    def fetch_round_s(self) -> float:
        """A short round while the fetches are short, Faust's second while they long-poll."""
        return IDLE_FETCH_ROUND_S if self._idle_fetches else BUSY_FETCH_ROUND_S

    def pace_fetches(self, now: float | None = None) -> None:
        """Long idle fetches once rounds have delivered nothing for ``QUIET_BEFORE_IDLE_S``,
        short ones after a round that delivered."""
        now = time.monotonic() if now is None else now
        quiet = self.delivered == self._delivered_before
        self._delivered_before = self.delivered
        if quiet:
            if self._quiet_since is None:
                self._quiet_since = now
            idle = now - self._quiet_since >= QUIET_BEFORE_IDLE_S
        else:
            self._quiet_since = None
            idle = False
        if idle == self._idle_fetches:
            return
        if idle:
            options = (IDLE_FETCH_MAX_WAIT_MS, IDLE_FETCH_MIN_BYTES)
        else:
            options = (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES)
        if set_fetch_options(self, *options):
            self._idle_fetches = idle

    async def room_in_buffers(self) -> None:
        """Return once every stream buffer is at most half full.

        Faust pauses a partition whose stream buffer passes 80% of its size, and resumes
        it when the buffer falls to 40%. But a fetch already waiting on the other
        partitions is not woken by that resumption: it waits its full second for records
        from partitions that have none (and with every partition paused, Faust sleeps a
        second). Measured on one hot partition (``bench.components.streams``): the worker idled
        45% of the time. So the fetcher takes no more records while a buffer is over
        half full (half, plus one fetch of at most ``broker_max_poll_records``, stays
        under Faust's 80%), and Faust's pause is not reached.
        """
        queues = [topic.queue for topic in self.app.topics]
        # polled: Faust's buffers signal only their own 40% mark, to paused partitions
        while any(queue.qsize() > queue.maxsize // 2 for queue in queues):  # noqa: ASYNC110
            await asyncio.sleep(ROOM_POLL_S)

    async def before_fetch(self) -> None:
        """Awaited before every fetch round (HookedConsumer)."""
        await self.room_in_buffers()
        self.pace_fetches()

    async def deliver(
        self, callback: Callable[[Message], Awaitable[Any]], message: Message
    ) -> None:
        """``callback(message)``: inline while it does not block, else as Faust does."""
        self.delivered += 1
        delivery = callback(message)
        if not self.suspend_flow.is_set():
            rest = step_inline(cast(Coroutine[Any, Any, Any], delivery))
            if rest is None:
                return
            delivery = rest
        await self.wait_first(delivery, self.suspend_flow.wait())


def step_inline(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any] | None:
    """Run ``coro`` here until it first blocks: None if it finished (its result is
    dropped, as Faust drops the delivery's), else a coroutine that runs the rest of it
    in whichever task awaits it. An exception raised before it blocks is raised here."""
    try:
        blocked_on = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    return _finish(coro, blocked_on)


async def _finish(coro: Coroutine[Any, Any, Any], blocked_on: Any) -> Any:
    return await _resume(coro, blocked_on)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], blocked_on: Any) -> Generator[Any, Any, Any]:
    # Pass what the coroutine yields (the future it waits on) up to the task, and what
    # the task sends or throws back (a result, a cancellation) down to the coroutine.
    while True:
        try:
            sent = yield blocked_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # CancelledError included: passed down
            try:
                blocked_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                blocked_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value
