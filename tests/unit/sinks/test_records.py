from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from schemas import codec
from schemas.inventory import Restock
from schemas.orders import OrderCommitted, OrderItem
from schemas.topics import TopicNames
from sinks.exceptions import PoisonRecord
from sinks.postgres import next_offsets
from sinks.records import ConsumedRecord, dead_letter_envelope, parse

TOPICS = TopicNames("x.")


def record(topic: str, value: bytes | None, offset: int = 0, partition: int = 0) -> ConsumedRecord:
    return ConsumedRecord(topic, partition, offset, b"k", value)


def test_parses_a_committed_order() -> None:
    event = OrderCommitted(
        event_id="e",
        order_id="o",
        customer_id="c",
        items=(OrderItem(line_no=0, product_id="p", quantity=1, unit_price=Decimal("1.00")),),
        total=Decimal("1.00"),
    )
    parsed = parse(record("x.orders.committed", codec.encode(event)), TOPICS)
    assert parsed.event == event


@pytest.mark.parametrize(
    "value", [b"not json", b"{}", b'{"type":"order_committed","order_id":"o"}', None]
)
def test_unreadable_records_are_poison(value: bytes | None) -> None:
    with pytest.raises(PoisonRecord):
        parse(record("x.orders.committed", value), TOPICS)


def test_restock_is_consumed_and_skipped() -> None:
    cmd = Restock(command_id="c", product_id="p", quantity=3)
    assert parse(record("x.inventory.commands", codec.encode(cmd)), TOPICS).event is None


def test_dead_letter_envelope_keeps_reason_origin_and_bytes() -> None:
    env = json.loads(
        dead_letter_envelope(record("x.orders.rejected", b"\xff\x00", 7, 3), "bad", "s")
    )
    assert (env["source_topic"], env["partition"], env["offset"], env["reason"]) == (
        "x.orders.rejected",
        3,
        7,
        "bad",
    )
    assert base64.b64decode(env["value"]["base64"]) == b"\xff\x00"
    assert env["key"] == {"text": "k"}


def test_next_offsets_are_one_past_the_highest_per_partition() -> None:
    batch = [record("a", b"", 5), record("a", b"", 9), record("a", b"", 2, partition=1)]
    assert next_offsets(batch) == {("a", 0): 10, ("a", 1): 3}
