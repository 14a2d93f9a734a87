"""The agents, the expiry timer and the read-model task, wired onto one app.

Both agents write tables, so both run with concurrency 1; each consumes batches
(``streams.faustinternals.take_batches``) and hands them to a processor that does no awaiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import faust

from orderstream.core.settings import Settings
from schemas import codec
from schemas import topics as names
from schemas.orders import OrderExpiryCheck
from streams.faustinternals import take_batches
from streams.faustutil import DirectTableWriter, Outbox, scan_partition
from streams.metrics import WorkerMetrics
from streams.pruning import LinePruner
from streams.readmodel import ReadModelWriter
from streams.records import LINE_PREFIX
from streams.settler import SettleProcessor
from streams.stock import StockProcessor
from streams.tables import StreamTables
from streams.topics import StreamTopics
from streams.watchdog import CHECK_EVERY_S, Progress, watch

logger = logging.getLogger(__name__)

BATCH_MAX = 2000
# A batch is yielded at most this long after its first event, or when it is full. 5 ms
# rather than 20: more orders decided end to end for less CPU per order, and a busy
# partition still fills batches (docs/decisions/0010-batch-wait.md).
BATCH_WITHIN_S = 0.005
DECIDED_RETENTION_S = 3600.0  # decided orders kept to absorb late lines and replays


@dataclass(frozen=True)
class StreamAgents:
    reserve_stock: faust.types.AgentT
    settle_orders: faust.types.AgentT
    stock: StockProcessor
    settler: SettleProcessor


def expiry_tick_interval(hold_time_s: float) -> float:
    return min(5.0, max(0.2, hold_time_s / 4))


def register_agents(
    app: faust.App,
    settings: Settings,
    topics: StreamTopics,
    tables: StreamTables,
    readmodel: ReadModelWriter,
    metrics: WorkerMetrics,
) -> StreamAgents:
    # one outbox per agent: each flushes its own records at the end of its own batch; both
    # have the producer track every topic the worker writes before the first batch (Outbox)
    delivered = metrics.count_delivered
    written = [topic.get_topic_name() for topic in topics.outputs.values()]
    written += [
        table.changelog_topic.get_topic_name()
        for table in (tables.stock_by_product, tables.pending_orders)
    ]
    stock_outbox, settle_outbox = Outbox(app, delivered, written), Outbox(app, delivered, written)
    stock = StockProcessor(
        DirectTableWriter(tables.stock_by_product, stock_outbox),
        stock_outbox,
        topics,
        settings.topics(names.ORDER_REQUESTS),
        readmodel,
        LinePruner(
            partial(scan_partition, tables.stock_by_product, prefix=LINE_PREFIX),
            pass_every_s=settings.stock_prune_pass_s,
        ),
        line_retention_s=settings.stock_line_retention_s,
        consumer=f"{app.conf.id}:reserve_stock",
    )
    settler = SettleProcessor(
        app,
        tables.pending_orders,
        DirectTableWriter(tables.pending_orders, settle_outbox),
        settle_outbox,
        topics,
        readmodel,
        hold_time_s=settings.hold_time_s,
        retention_s=max(DECIDED_RETENTION_S, 10 * settings.hold_time_s),
        consumer=f"{app.conf.id}:settle_orders",
    )
    stock_progress, settle_progress = Progress(), Progress()
    reservations = topics.output(names.ORDER_RESERVATIONS)
    reservations_name = settings.topics(names.ORDER_RESERVATIONS)

    async def reserve_stock(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, BATCH_WITHIN_S):
            with metrics.batch("reserve_stock", len(events)):
                await stock.process(events)
            stock_progress.events += len(events)

    async def settle_orders(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, BATCH_WITHIN_S):
            with metrics.batch("settle_orders", len(events)):
                await settler.process(events)
            settle_progress.events += len(events)

    async def send_expiry_ticks() -> None:
        """Tick every partition of orders.reservations this worker owns, in-stream."""
        for tp in app.assignor.assigned_actives():
            if tp.topic == reservations_name:
                await reservations.send(
                    key=b"~expiry-check",
                    value=codec.encode(OrderExpiryCheck(partition=tp.partition)),
                    partition=tp.partition,
                )

    # one stall watchdog per agent, as each has its own input (streams.watchdog)
    watchdogs = [
        watch(app, stock_progress, topics.stock_source.topics, settings.worker_stall_s),
        watch(app, settle_progress, topics.settle_source.topics, settings.worker_stall_s),
    ]

    async def check_stall() -> None:
        """Stop this worker if an agent has unread records but processes nothing."""
        for watchdog in watchdogs:
            await watchdog.check()

    async def write_read_model() -> None:
        await readmodel.run()

    reserve_agent = app.agent(topics.stock_source, name="reserve_stock", concurrency=1)(
        reserve_stock
    )
    settle_agent = app.agent(topics.settle_source, name="settle_orders", concurrency=1)(
        settle_orders
    )
    app.timer(expiry_tick_interval(settings.hold_time_s), name="send_expiry_ticks")(
        send_expiry_ticks
    )
    if settings.worker_stall_s > 0:
        app.timer(CHECK_EVERY_S, name="check_stall")(check_stall)
    app.task(write_read_model)
    return StreamAgents(reserve_agent, settle_agent, stock, settler)
