"""The outbox relay against real Kafka and PostgreSQL: every row delivered at least once,
one shipped event per order after dedupe by event_id."""

from __future__ import annotations

import json
import threading

import sqlalchemy as sa
from sink_helpers import Producer, committed_order, read_topic, sink_in_thread, wait_until

from orderstream.core.settings import Settings
from schemas.topics import DEAD_LETTER, ORDERS_COMMITTED, ORDERS_SHIPPED
from sinks.relay import OutboxListener, OutboxRelay, make_producer, run_relay
from sinks.wiring import libpq_url


def unsent(engine: sa.Engine, topic: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE topic = :t AND sent_at IS NULL"),
                {"t": topic},
            ).scalar_one()
        )


def test_relay_delivers_every_row_at_least_once_and_dedupes_to_one_event_per_order(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    ids = [f"{namespace}r{n}" for n in range(1000)]
    for oid in ids:
        producer.send(ORDERS_COMMITTED, oid, committed_order(oid))
    producer.send(ORDERS_COMMITTED, "k", b"garbage")
    producer.flush()
    shipped_topic = sink_settings.topics(ORDERS_SHIPPED)
    relay = OutboxRelay(
        sink_engine, lambda: make_producer(sink_settings.kafka_bootstrap), batch_size=300
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=run_relay,
        args=(relay, OutboxListener(libpq_url(sink_settings.database_url)), stop),
        daemon=True,
    )
    thread.start()
    try:
        with sink_in_thread(sink_settings):
            wait_until(
                lambda: (
                    relay.stats.sent >= len(ids) + 1 and unsent(sink_engine, shipped_topic) == 0
                ),
                120,
                "relay sent everything",
            )
        # a relay that crashed after the acks but before marking rows sent resends them
        with sink_engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE outbox SET sent_at = NULL WHERE id IN (SELECT id FROM outbox "
                    "WHERE topic = :t ORDER BY id LIMIT 100)"
                ),
                {"t": shipped_topic},
            )
            conn.execute(sa.text("NOTIFY orderstream_outbox"))
        wait_until(lambda: unsent(sink_engine, shipped_topic) == 0, 60, "resend done")
    finally:
        stop.set()
        thread.join(timeout=30)
        relay.close()

    records = read_topic(sink_settings, ORDERS_SHIPPED, expected=len(ids) + 100)
    events = [json.loads(r.value) for r in records]
    assert len(events) >= len(ids) + 100  # at least once, duplicates included
    by_event_id = {e["event_id"]: e for e in events}
    assert len(by_event_id) == len(ids)  # one event per order after dedupe
    assert sorted(e["order_id"] for e in by_event_id.values()) == sorted(ids)
    assert all(r.key.decode() == json.loads(r.value)["order_id"] for r in records)

    dead = read_topic(sink_settings, DEAD_LETTER, expected=1)
    assert [json.loads(r.value)["value"] for r in dead] == [{"text": "garbage"}]
