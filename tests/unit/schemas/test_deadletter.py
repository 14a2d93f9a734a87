"""The dead-letter envelope every program sends (schemas.deadletter)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from schemas.deadletter import (
    DEAD_LETTER_SCHEMA_VERSION,
    DeadLetter,
    dead_letter_envelope,
    dead_letter_event_id,
)

FIELDS = {
    "event_id",
    "schema_version",
    "source_topic",
    "partition",
    "offset",
    "consumer",
    "reason",
    "failed_at",
    "key",
    "value",
}


def envelope(**overrides: object) -> bytes:
    args: dict[str, object] = dict(
        topic="t.orders.requests",
        partition=3,
        offset=41,
        key=b"SKU-1",
        value=b"\xff\xfegarbage",
        reason="cannot decode: JSON is malformed",
        consumer="app:reserve_stock",
    )
    args.update(overrides)
    return dead_letter_envelope(**args)  # type: ignore[arg-type]


def test_the_envelope_says_where_the_record_came_from_why_it_failed_and_holds_its_bytes() -> None:
    value = json.loads(envelope())
    assert set(value) == FIELDS
    assert value["schema_version"] == DEAD_LETTER_SCHEMA_VERSION
    assert (value["source_topic"], value["partition"], value["offset"]) == (
        "t.orders.requests",
        3,
        41,
    )
    assert value["consumer"] == "app:reserve_stock"
    assert value["reason"] == "cannot decode: JSON is malformed"
    assert value["key"] == {"text": "SKU-1"}
    assert base64.b64decode(value["value"]["base64"]) == b"\xff\xfegarbage"
    assert datetime.fromisoformat(value["failed_at"]).tzinfo is not None


def test_the_event_id_depends_only_on_the_records_position() -> None:
    first = json.loads(envelope(reason="a", consumer="x"))
    again = json.loads(envelope(reason="b", consumer="y", value=b"other"))
    expected = dead_letter_event_id("t.orders.requests", 3, 41)
    assert first["event_id"] == again["event_id"] == expected
    assert dead_letter_event_id("t.orders.requests", 3, 42) != first["event_id"]
    assert dead_letter_event_id("t.orders.requests", 2, 41) != first["event_id"]
    assert dead_letter_event_id("u.orders.requests", 3, 41) != first["event_id"]


@pytest.mark.parametrize(
    ("key", "value"), [(b"k", b"text value"), (None, None), (b"\x00\xff", b"\x80"), (b"", b"")]
)
def test_a_parsed_envelope_gives_back_the_original_bytes(
    key: bytes | None, value: bytes | None
) -> None:
    when = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
    letter = DeadLetter.parse(envelope(key=key, value=value, failed_at=when))
    assert (letter.key, letter.value) == (key, value)
    assert letter.failed_at == when
    assert letter.event_id == dead_letter_event_id("t.orders.requests", 3, 41)
    assert (letter.source_topic, letter.partition, letter.offset) == ("t.orders.requests", 3, 41)


@pytest.mark.parametrize("raw", [b"garbage", None, b"{}", b'{"event_id": "e"}', b"[1]"])
def test_a_record_that_is_not_an_envelope_is_refused(raw: bytes | None) -> None:
    with pytest.raises(ValueError, match="not a dead-letter envelope"):
        DeadLetter.parse(raw)
