"""Offsets are never committed past a message delivered and not acked (Faust's head-gap
check lets a commit skip one in-flight message at the head)."""

from __future__ import annotations

from collections import defaultdict, deque
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.faustinternals import HookedConsumer, new_offset_before_in_flight

pytestmark = pytest.mark.unit

TP0 = TP("orders.reservations", 0)
upstream = Consumer._new_offset


def consumer(committed: int | None, acked: list[int]) -> Any:
    state = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None),
    )
    state._acked[TP0] = list(acked)
    state._acked_index[TP0] = set(acked)
    state._committed_offset[TP0] = committed
    return state


def test_faust_alone_commits_over_one_message_in_flight_at_the_head() -> None:
    # the reproduction of faust-streaming #606: 2585 is still being processed
    assert upstream(consumer(2585, [2586, 2587, 2588, 2589]), TP0) == 2590


def test_a_message_in_flight_at_the_head_holds_the_commit() -> None:
    state = consumer(2585, [2586, 2587, 2588, 2589])
    assert new_offset_before_in_flight(state, TP0, 2585, upstream) is None
    # once it is acked, everything acked after it is committed: nothing was dropped
    state._acked[TP0].append(2585)
    assert new_offset_before_in_flight(state, TP0, None, upstream) == 2590


def test_the_commit_stops_at_a_message_in_flight_in_the_middle() -> None:
    state = consumer(10, [10, 11, 12, 13, 14, 16, 17])
    assert new_offset_before_in_flight(state, TP0, 15, upstream) == 15
    assert state._acked[TP0] == [16, 17]
    state._committed_offset[TP0] = 15
    state._acked[TP0].append(15)
    assert new_offset_before_in_flight(state, TP0, None, upstream) == 18


def test_nothing_in_flight_is_faust_exactly() -> None:
    mine, faust = consumer(10, [10, 11, 13]), consumer(10, [10, 11, 13])
    assert new_offset_before_in_flight(mine, TP0, None, upstream) == upstream(faust, TP0) == 12
    assert mine._acked[TP0] == faust._acked[TP0] == [13]


def test_offsets_the_log_does_not_hold_are_still_passed_over() -> None:
    state = consumer(10, [10, 11, 13])
    state._gap[TP0].addi(12, 13)  # 12 never fetched (compaction, a transaction marker)
    assert new_offset_before_in_flight(state, TP0, 14, upstream) == 14


def message(offset: int, acked: bool = False) -> SimpleNamespace:
    return SimpleNamespace(offset=offset, acked=acked)


def test_the_head_is_the_oldest_message_not_acked() -> None:
    state = SimpleNamespace(_in_flight=defaultdict(deque))
    state._in_flight[TP0].extend([message(5, True), message(6), message(7, True)])
    assert HookedConsumer.in_flight_head(state, TP0) == 6  # type: ignore[arg-type]
    state._in_flight[TP0][0].acked = True
    assert HookedConsumer.in_flight_head(state, TP0) is None  # type: ignore[arg-type]
    assert not state._in_flight[TP0]
    assert HookedConsumer.in_flight_head(state, TP("other", 0)) is None  # type: ignore[arg-type]
