"""Latency per stage of orderstream's pipeline: POST → decided, and POST → shipped event.

The client sees only the final answer. When an order was *decided* (committed or rejected by
the stock agents) and when its *shipped event* was published are read black-box from the
public topics: each record's timestamp is set by the producer that wrote it (the worker's
outbox for ``orders.committed``/``orders.rejected``, the relay for ``orders.shipped``), on the
same machine's clock as the load generator's. An order refused at the door (409 from the
sold-out gate) is decided by its POST answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

from kafka import KafkaConsumer, TopicPartition

from bench.figures import OrderOutcome, percentile
from schemas.topics import ORDERS_COMMITTED, ORDERS_REJECTED, ORDERS_SHIPPED

DECISION_TOPICS = (ORDERS_COMMITTED, ORDERS_REJECTED)


def wall_offset() -> float:
    """Seconds to add to a ``time.monotonic()`` reading to get wall-clock seconds."""
    return time.time() - time.monotonic()


def first_times(
    bootstrap: str, topics: Sequence[str], since_ms: int, timeout_s: float = 120.0
) -> dict[str, int]:
    """Each order id's earliest record timestamp (ms) on ``topics``, from ``since_ms`` on.

    Keys are order ids (every public topic is keyed by order). Reads each partition from the
    first offset at or after ``since_ms`` to the end it had when reading started; no group.
    """
    first: dict[str, int] = {}
    for key, ts in _records_since(bootstrap, topics, since_ms, timeout_s):
        if key not in first or ts < first[key]:
            first[key] = ts
    return first


def _records_since(
    bootstrap: str, topics: Sequence[str], since_ms: int, timeout_s: float
) -> Iterator[tuple[str, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        starts = consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else end[tp])
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{', '.join(topics)} not read to the end within {timeout_s}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if r.offset < end[tp] and r.key is not None:
                        yield r.key.decode("utf-8"), r.timestamp
    finally:
        consumer.close()


def stage_latencies_ms(
    outcomes: Iterable[OrderOutcome],
    decided_ms: Mapping[str, int],
    shipped_ms: Mapping[str, int],
    offset_s: float,
) -> tuple[list[float], list[float]]:
    """(POST → decided, POST → shipped event) in ms, from each order's start.

    ``offset_s`` turns the outcomes' monotonic times into wall-clock seconds. Orders refused at
    the door count as decided when their POST was answered; accepted orders whose decision is
    not on the topics are left out of both lists (the bench counts them as lost elsewhere).
    """
    decided: list[float] = []
    shipped: list[float] = []
    for o in outcomes:
        start_ms = (o.t_start + offset_s) * 1000
        if o.refused and o.t_final is not None:
            decided.append((o.t_final - o.t_start) * 1000)
        elif o.accepted and o.order_id is not None and o.order_id in decided_ms:
            decided.append(decided_ms[o.order_id] - start_ms)
            if o.order_id in shipped_ms:
                shipped.append(shipped_ms[o.order_id] - start_ms)
    return decided, shipped


def stage_figures(decided: Sequence[float], shipped: Sequence[float]) -> dict[str, float]:
    """p50/p99 of each stage, for the summary and the report."""
    return {
        "decided_p50_ms": round(percentile(decided, 50), 2),
        "decided_p99_ms": round(percentile(decided, 99), 2),
        "shipped_event_p50_ms": round(percentile(shipped, 50), 2),
        "shipped_event_p99_ms": round(percentile(shipped, 99), 2),
    }


def pipeline_stages(bootstrap: str, outcomes: Sequence[OrderOutcome]) -> dict[str, float]:
    """Read the public topics from the run's first order on and return the stage figures."""
    if not outcomes:
        return {}
    offset_s = wall_offset()
    since_ms = int((min(o.t_start for o in outcomes) + offset_s) * 1000) - 1000
    decided = first_times(bootstrap, DECISION_TOPICS, since_ms)
    shipped = first_times(bootstrap, (ORDERS_SHIPPED,), since_ms)
    return stage_figures(*stage_latencies_ms(outcomes, decided, shipped, offset_s))
