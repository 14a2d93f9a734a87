"""The topics whose history is read later keep it as configured, and reconcile stays
truthful once retention has deleted old shipped events.

Retention is simulated by deleting orders.shipped's records up to its current end (what
expiry does to old segments), on the real broker."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from orderstream.reconcile import Reconciler
from schemas import topics as names


def test_shipped_events_and_dead_letters_keep_the_configured_retention(stack) -> None:
    settings = stack.settings
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        wanted = settings.retention_ms
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        )["topic"]
    finally:
        admin.close()
    assert {name: int(described[name]["retention.ms"]["value"]) for name in wanted} == wanted
    assert wanted[settings.topics(names.ORDERS_SHIPPED)] == 7 * 24 * 3_600_000


def test_reconcile_counts_orders_whose_shipped_events_expired_and_reports_none(
    stack, api, stocked
) -> None:
    product = stocked("RET", 5)
    finals = [api.buy(f"ret-{i}", [(product, 1)]) for i in range(5)]
    assert [f["status"] for f in finals] == ["shipped"] * 5
    deadline = time.monotonic() + 60
    while True:  # the relay publishes the shipped events after the sink's commit
        with Reconciler(stack.settings) as reconciler:
            violations = [str(v) for v in reconciler.check([product])]
        if not violations:
            break
        assert time.monotonic() < deadline, violations
        time.sleep(1)

    shipped = stack.settings.topics(names.ORDERS_SHIPPED)
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(shipped, p) for p in consumer.partitions_for_topic(shipped)]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        admin.delete_records({tp: end for tp, end in ends.items() if end > 0})
    finally:
        admin.close()

    with Reconciler(stack.settings) as reconciler:
        violations = [str(v) for v in reconciler.check([product])]
        expired = reconciler.expired
    assert violations == []
    assert expired == 5
