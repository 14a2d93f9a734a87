"""``orderstream deadletters``: filters, dedupe, limit and the envelope as shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from orderstream.deadletters import Filters, deadletters, line, parse_since, select, shown
from schemas.deadletter import DeadLetter, dead_letter_envelope

T0 = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


def letter(
    offset: int,
    topic: str = "orders.requests",
    reason: str = "cannot decode: JSON is malformed",
    minutes: int = 0,
    value: bytes | None = b"garbage",
) -> DeadLetter:
    return DeadLetter.parse(
        dead_letter_envelope(
            topic=topic,
            partition=1,
            offset=offset,
            key=b"SKU-1",
            value=value,
            reason=reason,
            consumer="sink",
            failed_at=T0 + timedelta(minutes=minutes),
        )
    )


LETTERS = [
    letter(1, minutes=1),
    letter(2, "orders.reservations", "cannot decode: Expected `object`", minutes=2),
    letter(3, "orders.committed", "value too long", minutes=3),
    letter(1, minutes=5),  # the same dead letter again (a relay resend): same id
]


def offsets(found: list[DeadLetter]) -> list[int]:
    return [d.offset for d in found]


def test_each_dead_letter_once_oldest_first() -> None:
    assert offsets(select(LETTERS, Filters(), None)) == [1, 2, 3]


def test_filters_by_source_topic_reason_and_time() -> None:
    assert offsets(select(LETTERS, Filters(source_topic="orders.reservations"), None)) == [2]
    assert offsets(select(LETTERS, Filters(reason_contains="cannot decode"), None)) == [1, 2]
    assert offsets(select(LETTERS, Filters(since=T0 + timedelta(minutes=2)), None)) == [2, 3]
    both = Filters(source_topic="orders.requests", reason_contains="too long")
    assert select(LETTERS, both, None) == []


def test_limit_keeps_the_most_recent() -> None:
    assert offsets(select(LETTERS, Filters(), 2)) == [2, 3]
    assert select(LETTERS, Filters(), 0) == []


def test_since_without_a_zone_is_utc() -> None:
    assert parse_since("2026-12-02T20:00:00") == T0
    assert parse_since("2026-12-02T21:00:00+01:00") == T0
    assert parse_since(None) is None


def test_a_line_names_the_id_time_consumer_origin_and_reason() -> None:
    text = line(LETTERS[0])
    for part in (LETTERS[0].event_id, "sink", "orders.requests[1]@1", "JSON is malformed"):
        assert part in text


def test_show_prints_a_text_value_as_text_and_bytes_as_base64() -> None:
    assert json.loads(shown(letter(1)))["value"] == "garbage"
    assert json.loads(shown(letter(1, value=b"\xff")))["value"] == {"base64": "/w=="}


def test_replay_wants_event_ids_or_all() -> None:
    runner = CliRunner()
    assert runner.invoke(deadletters, ["replay"]).exit_code == 2
    assert runner.invoke(deadletters, ["replay", "e1", "--all"]).exit_code == 2


def test_a_bad_since_is_a_usage_error() -> None:
    result = CliRunner().invoke(deadletters, ["list", "--since", "yesterday"])
    assert result.exit_code == 2 and "--since" in result.output
