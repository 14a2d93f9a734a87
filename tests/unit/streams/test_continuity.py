"""The continuity check: a batch must start where its table partition's source mark ends."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from streams import continuity
from streams.records import SourceMark, decode_stock, encode

REQ, CMD = "orders.requests", "inventory.commands"


def event(topic: str, offset: int, partition: int = 3) -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, offset=offset, partition=partition))


def test_a_partition_without_a_mark_has_nothing_to_check() -> None:
    assert continuity.gaps(None, [event(REQ, 500)]) == []


@pytest.mark.parametrize("first", [0, 7, 8])
def test_a_batch_that_starts_at_or_before_the_next_offset_follows_the_mark(first: int) -> None:
    # a replay (at or before the mark) and the next record both follow
    mark = SourceMark(offsets={REQ: 7})
    assert continuity.gaps(mark, [event(REQ, first), event(REQ, first + 1)]) == []


def test_a_batch_that_starts_past_the_next_offset_is_a_gap() -> None:
    mark = SourceMark(offsets={REQ: 7, CMD: 2})
    found = continuity.gaps(mark, [event(CMD, 3), event(REQ, 40), event(REQ, 41)])
    assert found == [continuity.Gap(REQ, 3, applied=7, first=40)]
    assert "holds offsets up to 7, the batch starts at 40" in str(continuity.TableBehind(found))


def test_a_topic_the_mark_has_not_seen_yet_is_not_a_gap() -> None:
    assert continuity.gaps(SourceMark(offsets={REQ: 7}), [event(CMD, 90)]) == []


def test_the_mark_advances_to_the_last_offset_of_each_topic_and_never_back() -> None:
    mark = continuity.advanced(
        SourceMark(offsets={REQ: 9, CMD: 4}), [event(REQ, 5), event(REQ, 6), event(CMD, 5)]
    )
    assert mark == SourceMark(offsets={REQ: 9, CMD: 5})
    assert continuity.advanced(None, [event(REQ, 0), event(REQ, 1)]).offsets == {REQ: 1}


def test_the_mark_round_trips_through_the_changelog_encoding() -> None:
    mark = SourceMark(offsets={REQ: 12, CMD: 3})
    assert decode_stock(encode(mark)) == mark
