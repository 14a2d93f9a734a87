"""The PostgreSQL sink: ``setup``, ``add``, ``flush``; a failed flush means the batch is
processed again (nothing is removed from the buffer until its transaction committed).

One transaction per batch writes the projection, the outbox rows and the consumed
offsets. With a ``ShardLock``, each such transaction first proves that this process
still owns the shard (``ShardLock.verify``, which raises ``LockLost``). A batch failing
for a data reason is retried once, then bisected down to the poison record, which is
dead-lettered (through the outbox, in the transaction that advances its offset). Any
other failure propagates: the caller backs off and retries (``LockLost`` excepted).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import Engine, exc, text

from orderstream.core import tracing
from orderstream.core.logs import context
from schemas.topics import DEAD_LETTER, TopicNames
from sinks.exceptions import PoisonRecord
from sinks.lock import ShardLock
from sinks.projection import OutboxRow, order_ids_of, plan_batch, request_keys_of
from sinks.readmodel import ReadModelWriter
from sinks.records import (
    ConsumedRecord,
    SinkEvent,
    dead_letter_envelope,
    dead_letter_event_id,
    key_text,
    parse,
)
from sinks.store import (
    load_key_owners,
    load_known,
    load_recent_statuses,
    save_offsets,
    write_outbox,
    write_plan,
)
from sinks.uow import UnitOfWork

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger(__name__)

DATA_ERRORS = (exc.DataError, exc.IntegrityError, ValueError, ArithmeticError)
# how far back of a shard's last committed batch its read-model writes are repeated at start
READ_MODEL_REWRITE_S = 60.0


class PostgresSink:
    def __init__(
        self,
        engine: Engine,
        topics: TopicNames,
        consumer: str,
        read_model: ReadModelWriter | None = None,
        lock: ShardLock | None = None,
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._topics = topics
        self._consumer = consumer
        self._read_model = read_model
        self._buffer: list[ConsumedRecord] = []
        self.written = 0  # records committed (for metrics and the benchmark)
        self.batches = 0  # transactions committed (for metrics)
        self.dead_lettered = 0

    def setup(self) -> None:
        """Fail fast when the database is unreachable or not migrated."""
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM consumed_offsets LIMIT 1"))

    def rewrite_recent_read_model(self, prefix: str, shard: int, shards: int) -> int:
        """Write again the read-model statuses of what this shard committed last: a sink
        killed between a batch's commit and its Redis write (or with writes pending while
        Redis was down) would otherwise leave GETs answering an older status. Forward-only
        writes make the repeat harmless. Returns how many statuses were written."""
        if self._read_model is None:
            return 0
        with self._engine.connect() as conn:
            updates = load_recent_statuses(
                conn, self._consumer, prefix, shard, shards, READ_MODEL_REWRITE_S
            )
        self._read_model.write(updates)
        return len(updates)

    def add(self, record: ConsumedRecord) -> None:
        self._buffer.append(record)

    def __len__(self) -> int:
        return len(self._buffer)

    def buffered(self) -> list[ConsumedRecord]:
        return list(self._buffer)

    def discard(self) -> None:
        """Forget uncommitted records (their offsets were not advanced: they come back)."""
        self._buffer.clear()

    def flush(self) -> None:
        if not self._buffer:
            return
        batch = list(self._buffer)
        try:
            self._commit(batch)
        except DATA_ERRORS as first:
            logger.warning("batch of %d failed for a data reason (%s); retrying", len(batch), first)
            self._commit_or_bisect(batch)
        self._buffer.clear()

    def _commit_or_bisect(self, batch: list[ConsumedRecord]) -> None:
        try:
            self._commit(batch)
        except DATA_ERRORS as error:
            if len(batch) == 1:
                self._commit_dead(batch[0], f"data error: {_short(error)}")
                return
            middle = len(batch) // 2
            self._commit_or_bisect(batch[:middle])
            self._commit_or_bisect(batch[middle:])

    def _commit(self, batch: list[ConsumedRecord]) -> None:
        events: list[SinkEvent] = []
        dead: list[OutboxRow] = []
        traced: dict[str, Span] = {}  # order id -> this batch's span of its traced record
        for record in batch:
            try:
                parsed = parse(record, self._topics)
            except PoisonRecord as bad:
                dead.append(self._dead_letter_row(record, bad.reason))
                continue
            if parsed.event is not None:
                events.append(parsed.event)
                order_id = getattr(parsed.event, "order_id", None)
                span = tracing.start("sink", record.headers, order_id=order_id, topic=record.topic)
                if span is not None and order_id is not None:
                    traced[order_id] = span
        try:
            with UnitOfWork(self._engine) as uow:
                self._verify_lock(uow)
                status, cancels = load_known(uow.connection, order_ids_of(events))
                owners = load_key_owners(uow.connection, request_keys_of(events))
                plan = plan_batch(events, status, cancels, self._topics, key_owners=owners)
                if traced:
                    plan.outbox = with_traces(plan.outbox, traced)
                write_plan(uow.connection, plan)
                write_outbox(uow.connection, dead)
                save_offsets(uow.connection, self._consumer, next_offsets(batch))
                uow.commit()
        finally:
            for span in traced.values():
                span.end()
        self.written += len(batch)
        self.batches += 1
        self.dead_lettered += len(dead)
        if self._read_model is not None:
            self._read_model.write(plan.read_model)

    def _commit_dead(self, record: ConsumedRecord, reason: str) -> None:
        """Dead-letter one record in the transaction that advances past it."""
        with UnitOfWork(self._engine) as uow:
            self._verify_lock(uow)
            write_outbox(uow.connection, [self._dead_letter_row(record, reason)])
            save_offsets(uow.connection, self._consumer, next_offsets([record]))
            uow.commit()
        self.written += 1
        self.dead_lettered += 1

    def check_lock(self) -> None:
        """Raise ``LockLost`` unless this process still owns the shard (an idle sink asks
        between batches, so that a lost lock stops it before its next batch comes)."""
        if self._lock is not None:
            with UnitOfWork(self._engine) as uow:
                self._verify_lock(uow)

    def _verify_lock(self, uow: UnitOfWork) -> None:
        """First in every writing transaction: raises ``LockLost`` (the batch rolls back)
        unless this process still owns the shard."""
        if self._lock is not None:
            self._lock.verify(uow.connection)

    def _dead_letter_row(self, record: ConsumedRecord, reason: str) -> OutboxRow:
        logger.error(
            "dead-lettering %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            extra=context(topic=record.topic, partition=record.partition, offset=record.offset),
        )
        return OutboxRow(
            event_id=dead_letter_event_id(record),
            topic=self._topics(DEAD_LETTER),
            key=key_text(record.key),
            payload=dead_letter_envelope(record, reason, self._consumer).decode("utf-8"),
        )


def with_traces(rows: list[OutboxRow], traced: Mapping[str, Span]) -> list[OutboxRow]:
    """The rows an order's event makes (keyed by its order id: shipped, cancelled, rejected)
    carry the trace of the record that made them, for the relay to continue."""
    return [
        replace(row, trace=tracing.traceparent_of(traced[row.key]))
        if row.key is not None and row.key in traced
        else row
        for row in rows
    ]


def next_offsets(batch: list[ConsumedRecord]) -> dict[tuple[str, int], int]:
    result: dict[tuple[str, int], int] = defaultdict(int)
    for record in batch:
        key = (record.topic, record.partition)
        result[key] = max(result[key], record.offset + 1)
    return dict(result)


def _short(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).strip().splitlines()[0][:500]
