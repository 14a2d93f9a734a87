"""The workers' Faust consumer: prompt fetches, and delivery without a task per message.

Like ``streams.faustutil``, this reaches into faust-streaming 0.15.3's internals, so it
is pinned to that version (setup.cfg) and the integration tests run it on real Kafka.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message
from mode import Service

#: A fetch request returns once FETCH_MIN_BYTES are ready or after FETCH_MAX_WAIT_MS
#: (Faust hard-codes 1500 ms and aiokafka's default is 1 byte).
FETCH_MAX_WAIT_MS = 20
FETCH_MIN_BYTES = 16 * 1024

#: How often a fetcher waiting for room in the stream buffers looks again.
ROOM_POLL_S = 0.001

#: Faust's fetcher yields to the event loop after this many messages (as Faust does).
YIELD_EVERY = 100


class _PromptFetchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by consumer.start()
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer


class WorkerConsumer(aiokafka_driver.Consumer):
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
    ``_drain_messages`` below is Faust's, except that it runs the delivery coroutine's
    first step inline (``deliver``) and falls back to Faust's ``wait_first`` only when
    that step blocks or the flow is already suspended. On a Faust agent that only forwards
    its input (``python -m bench.components.streams --only floor``) the fetcher's
    per-message cost was ~40% of the process (docs/decisions/0009-faust-consumer.md).
    """

    def _new_consumer_thread(self) -> Any:
        return _PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

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

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
        # faust-streaming 0.15.3 Consumer._drain_messages, with ``deliver`` in place of
        # ``wait_first`` (and its unused diagnostics flag left out). Covered by every
        # integration test that runs a worker.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.room_in_buffers()
                ait = getmany(timeout=1.0)
                # Faust: getmany may be called in a loop that never releases the event loop
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > YIELD_EVERY:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # Faust drops a message below the read offset (log.dev)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.deliver(callback, message)
                    set_read_offset(tp, offset)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    async def deliver(
        self, callback: Callable[[Message], Awaitable[Any]], message: Message
    ) -> None:
        """``callback(message)``: inline while it does not block, else as Faust does."""
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
