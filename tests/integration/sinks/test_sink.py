"""The sink against real Kafka and PostgreSQL: idempotence, crash safety, arbitration,
dead letters. Every wait is bounded; assertions are about rows, never timings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sink_helpers import (
    Producer,
    cancel_order,
    committed_order,
    count,
    offsets_caught_up,
    outbox_rows,
    sink_in_thread,
    sink_subprocess,
    statuses,
    wait_until,
)

from orderstream.core.readmodel import Keys, decode_order
from orderstream.core.settings import Settings
from schemas.common import event_id_for
from schemas.inventory import Discontinue, UpsertProduct
from schemas.orders import REQUEST_KEY_CHARS, OrderCancelled, OrderCommitted, OrderRejected
from schemas.topics import (
    DEAD_LETTER,
    INVENTORY_COMMANDS,
    ORDER_CANCELLATIONS,
    ORDERS_CANCELLED,
    ORDERS_COMMITTED,
    ORDERS_REJECTED,
    ORDERS_SHIPPED,
)
from sinks.wiring import make_sink_consumer


def test_replayed_events_give_one_row_per_order_and_one_outbox_row_per_event(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    ids = [f"{namespace}o{n}" for n in range(300)]
    for _ in range(2):  # every event delivered twice
        for n, oid in enumerate(ids):
            if n % 10 == 0:
                producer.send(
                    ORDERS_REJECTED,
                    oid,
                    OrderRejected(
                        event_id=event_id_for(oid, "rejected"),
                        order_id=oid,
                        customer_id="c",
                        reason="out_of_stock",
                    ),
                )
            elif n % 10 == 1:
                producer.send(
                    ORDERS_CANCELLED,
                    oid,
                    OrderCancelled(event_id=event_id_for(oid, "x"), order_id=oid, customer_id="c"),
                )
            else:
                producer.send(ORDERS_COMMITTED, oid, committed_order(oid, lines=3))
    producer.flush()

    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "sink caught up")

    def check() -> None:
        by_status = statuses(sink_engine, namespace)
        assert len(by_status) == 300
        assert sum(s == "shipped" for s in by_status.values()) == 240
        assert sum(s == "rejected" for s in by_status.values()) == 30
        assert sum(s == "cancelled" for s in by_status.values()) == 30
        assert (
            count(
                sink_engine,
                "SELECT count(*) FROM order_items WHERE order_id LIKE :p",
                p=namespace + "%",
            )
            == 240 * 3
        )
        shipped = outbox_rows(sink_engine, sink_settings.topics(ORDERS_SHIPPED))
        assert len(shipped) == 240
        assert {k for _, k, _ in shipped} == {o for o, s in by_status.items() if s == "shipped"}
        assert all(e == event_id_for(k, "shipped") for e, k, _ in shipped)

    check()
    # Forget what was consumed: the sink replays the topics from the beginning.
    with sink_engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM consumed_offsets WHERE topic LIKE :p"),
            {"p": namespace + "%"},
        )
    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "replay done")
    check()


def written_at_least(engine: sa.Engine, prefix: str, n: int) -> Callable[[], bool]:
    return lambda: len(statuses(engine, prefix)) >= n


def test_sigkill_mid_batch_loses_and_duplicates_nothing(
    sink_settings: Settings,
    sink_engine: sa.Engine,
    producer: Producer,
    namespace: str,
    tmp_path: Path,
) -> None:
    total = 6000
    ids = [f"{namespace}k{n}" for n in range(total)]
    for oid in ids:
        producer.send(ORDERS_COMMITTED, oid, committed_order(oid, lines=2))
    producer.flush()
    settings = dataclasses.replace(sink_settings, sink_batch_size=50)
    group = f"{namespace}sink-kill"
    log = tmp_path / "sink.log"
    kills = 0
    for threshold in (500, 2500):
        proc = sink_subprocess(settings, log, group)
        try:
            wait_until(written_at_least(sink_engine, namespace, threshold), 120, "orders")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        kills += 1
    assert len(statuses(sink_engine, namespace)) < total, "killed too late to prove anything"
    proc = sink_subprocess(settings, log, group)
    try:
        wait_until(lambda: offsets_caught_up(sink_engine, settings), 180, "restarted sink done")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert kills == 2
    by_status = statuses(sink_engine, namespace)
    assert set(by_status) == set(ids)
    assert set(by_status.values()) == {"shipped"}
    assert (
        count(
            sink_engine,
            "SELECT count(*) FROM order_items WHERE order_id LIKE :p",
            p=namespace + "%",
        )
        == 2 * total
    )
    shipped = outbox_rows(sink_engine, settings.topics(ORDERS_SHIPPED))
    assert len(shipped) == total
    assert len({e for e, _, _ in shipped}) == total


def test_cancel_before_commit_wins_and_cancel_after_shipping_is_too_late(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    early, late, both = f"{namespace}early", f"{namespace}late", f"{namespace}both"
    with sink_in_thread(sink_settings):
        producer.send(ORDER_CANCELLATIONS, early, cancel_order(early))
        producer.flush()
        wait_until(
            lambda: count(
                sink_engine, "SELECT count(*) FROM cancel_requests WHERE order_id = :o", o=early
            ),
            60,
            "cancel request recorded",
        )
        producer.send(ORDERS_COMMITTED, early, committed_order(early, lines=3))
        producer.send(ORDERS_COMMITTED, late, committed_order(late, lines=2))
        producer.flush()
        wait_until(lambda: len(statuses(sink_engine, namespace)) == 2, 60, "two orders")
        producer.send(ORDER_CANCELLATIONS, late, cancel_order(late))
        # cancel and commit in flight together: either outcome, never both
        producer.send(ORDER_CANCELLATIONS, both, cancel_order(both))
        producer.send(ORDERS_COMMITTED, both, committed_order(both, lines=1))
        producer.flush()
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 60, "caught up")

    by_status = statuses(sink_engine, namespace)
    assert by_status[early] == "cancelled"
    assert by_status[late] == "shipped"
    assert by_status[both] in {"shipped", "cancelled"}
    assert (
        count(sink_engine, "SELECT count(*) FROM cancel_requests WHERE order_id = :o", o=late) == 0
    )

    cancelled = outbox_rows(sink_engine, sink_settings.topics(ORDERS_CANCELLED))
    releases = outbox_rows(sink_engine, sink_settings.topics(INVENTORY_COMMANDS))
    shipped = outbox_rows(sink_engine, sink_settings.topics(ORDERS_SHIPPED))
    cancelled_ids = {json.loads(p)["order_id"] for _, _, p in cancelled}
    shipped_ids = {k for _, k, _ in shipped}
    assert early in cancelled_ids and early not in shipped_ids
    assert late in shipped_ids and late not in cancelled_ids
    assert (both in shipped_ids) != (both in cancelled_ids)
    early_releases = sorted(
        (json.loads(p)["line_no"], json.loads(p)["quantity"], k)
        for _, k, p in releases
        if json.loads(p)["order_id"] == early
    )
    assert early_releases == [(0, 1, "sku-0"), (1, 2, "sku-1"), (2, 3, "sku-2")]
    late_releases = [p for _, _, p in releases if json.loads(p)["order_id"] == late]
    assert late_releases == []


def test_poison_records_go_to_the_dead_letter_outbox_and_later_records_are_processed(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    good_before, good_after = f"{namespace}g1", f"{namespace}g2"
    too_big = committed_order(f"{namespace}huge", lines=1)
    too_big = OrderCommitted(  # passes the schema, overflows numeric(14,2): a data error
        event_id=too_big.event_id,
        order_id=too_big.order_id,
        customer_id=too_big.customer_id,
        items=too_big.items,
        total=Decimal("1e15"),
    )
    # all on one key, so one partition, in this order
    producer.send(ORDERS_COMMITTED, "same-key", committed_order(good_before))
    producer.send(ORDERS_COMMITTED, "same-key", b"{not json")
    producer.send(ORDERS_COMMITTED, "same-key", too_big)
    producer.send(ORDERS_COMMITTED, "same-key", committed_order(good_after))
    producer.flush()
    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 60, "caught up")

    assert statuses(sink_engine, namespace) == {good_before: "shipped", good_after: "shipped"}
    dead = [
        json.loads(p) for _, _, p in outbox_rows(sink_engine, sink_settings.topics(DEAD_LETTER))
    ]
    assert len(dead) == 2
    reasons = {d["offset"]: d["reason"] for d in dead}
    assert reasons[1].startswith("cannot decode")
    assert reasons[2].startswith("data error") and "numeric" in reasons[2]
    assert dead[0]["value"] == {"text": "{not json"}
    assert all(d["source_topic"] == sink_settings.topics(ORDERS_COMMITTED) for d in dead)


def test_one_idempotency_key_buys_once_whatever_arrives(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    # three orders made for one request key (a key whose claim was lost, retried with
    # other bodies), on different partitions; one is shipped, the others are duplicates
    key = hashlib.sha256(namespace.encode()).hexdigest()[:REQUEST_KEY_CHARS]
    ids = [key + f"{n:016x}" for n in range(3)]
    for oid in ids:
        producer.send(ORDERS_COMMITTED, oid, committed_order(oid, lines=2))
    producer.flush()

    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "sink caught up")

    with sink_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT order_id, status, reason FROM orders WHERE request_key = :k"),
            {"k": key},
        ).all()
    assert sorted(status for _, status, _ in rows) == ["rejected", "rejected", "shipped"]
    duplicates = {oid for oid, status, _ in rows if status == "rejected"}
    assert {reason for _, status, reason in rows if status == "rejected"} == {"duplicate_request"}
    releases = [
        json.loads(p)
        for _, _, p in outbox_rows(sink_engine, sink_settings.topics(INVENTORY_COMMANDS))
    ]
    assert sorted((r["order_id"], r["line_no"]) for r in releases) == sorted(
        (oid, n) for oid in duplicates for n in range(2)
    )
    shipped = outbox_rows(sink_engine, sink_settings.topics(ORDERS_SHIPPED))
    assert [k for _, k, _ in shipped] == [oid for oid, status, _ in rows if status == "shipped"]
    # and PostgreSQL itself refuses a second order of the key that is not rejected
    with pytest.raises(sa.exc.IntegrityError), sink_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO orders (order_id, customer_id, status, request_key) "
                "VALUES (:o, 'c', 'cancelled', :k)"
            ),
            {"o": key + "f" * 16, "k": key},
        )


def test_a_catalog_import_writes_every_product_once_with_its_last_change(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    ids = [f"{namespace}p{n}" for n in range(600)]
    for n, pid in enumerate(ids):
        upsert = UpsertProduct(
            command_id=f"{pid}-1", product_id=pid, name=f"product {n}",
            price=Decimal(f"{n}.{n % 100:02d}"), limit_per_customer=n % 3 or None,
        )  # fmt: skip
        producer.send(INVENTORY_COMMANDS, pid, upsert)
    producer.flush()
    changed, gone, never = ids[2], ids[1], f"{namespace}never"

    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "sink caught up")
        # later batches, each holding only changes to products already written
        producer.send(
            INVENTORY_COMMANDS, gone, Discontinue(command_id=f"{gone}-2", product_id=gone)
        )
        producer.send(
            INVENTORY_COMMANDS,
            changed,
            UpsertProduct(command_id=f"{changed}-2", product_id=changed, name="renamed",
                          price=Decimal("0.01"), description="now described"),
        )  # fmt: skip
        producer.send(INVENTORY_COMMANDS, never, Discontinue(command_id="x", product_id=never))
        producer.flush()
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "sink caught up")

    with sink_engine.connect() as conn:
        rows = {
            pid: rest
            for pid, *rest in conn.execute(
                sa.text(
                    "SELECT product_id, name, price, active, limit_per_customer, description "
                    "FROM products WHERE starts_with(product_id, :ns)"
                ),
                {"ns": namespace},
            )
        }
    assert sorted(rows) == sorted(ids)  # a discontinue alone creates nothing
    assert rows[changed] == ["renamed", Decimal("0.01"), True, None, "now described"]
    assert rows[gone] == ["product 1", Decimal("1.01"), False, 1, None]
    for n, pid in enumerate(ids[3:], start=3):
        assert rows[pid] == [f"product {n}", Decimal(f"{n}.{n % 100:02d}"), True, n % 3 or None,
                             None], pid  # fmt: skip


def test_a_restarted_sink_writes_its_last_statuses_to_the_read_model_again(
    sink_settings: Settings,
    sink_engine: sa.Engine,
    producer: Producer,
    namespace: str,
    redis_client: Any,
) -> None:
    ids = [f"{namespace}rm{n}" for n in range(20)]
    for oid in ids:
        producer.send(ORDERS_COMMITTED, oid, committed_order(oid, lines=2))
    producer.flush()
    with sink_in_thread(sink_settings):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "sink caught up")
    # as if the sink was killed between the batch's commit and its Redis write
    keys = Keys(sink_settings.topic_prefix)
    redis_client.delete(*(keys.order(oid) for oid in ids))

    _runner, pg_sink, engine = make_sink_consumer(sink_settings)
    try:
        written = pg_sink.rewrite_recent_read_model(sink_settings.topic_prefix, 0, 1)
    finally:
        engine.dispose()

    assert written >= len(ids)
    shown = [decode_order(redis_client.hgetall(keys.order(oid))) for oid in ids]
    assert [s["status"] if s else None for s in shown] == ["shipped"] * len(ids)
    assert shown[0] is not None and shown[0]["total"] == str(committed_order(ids[0], 2).total)
