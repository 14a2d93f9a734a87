"""Latency per pipeline stage: which orders count, and from which clock."""

from __future__ import annotations

import math

import pytest

from bench.figures import ACCEPTED_HTTP, REFUSED_HTTP, OrderOutcome
from bench.stages import stage_figures, stage_latencies_ms

pytestmark = pytest.mark.unit

OFFSET_S = 1_000_000.0  # wall clock = monotonic + this


def accepted(order_id: str, t_start: float) -> OrderOutcome:
    return OrderOutcome(
        lines=(("p", 1),), t_sent=t_start + 0.5, http_status=ACCEPTED_HTTP, order_id=order_id,
        t_scheduled=t_start,
    )  # fmt: skip


def wall_ms(monotonic_s: float) -> int:
    return round((monotonic_s + OFFSET_S) * 1000)


def test_stages_count_from_the_scheduled_start_on_the_wall_clock() -> None:
    outcomes = [accepted("a", 10.0), accepted("b", 20.0)]
    decided = {"a": wall_ms(10.040), "b": wall_ms(20.100)}
    shipped = {"a": wall_ms(10.300)}

    to_decided, to_shipped = stage_latencies_ms(outcomes, decided, shipped, OFFSET_S)

    assert [round(x) for x in to_decided] == [40, 100]
    assert [round(x) for x in to_shipped] == [300]


def test_a_refusal_at_the_door_is_decided_by_its_answer_and_never_ships() -> None:
    refused = OrderOutcome(
        lines=(("p", 1),), t_sent=5.0, http_status=REFUSED_HTTP, final_status="rejected",
        t_final=5.012,
    )  # fmt: skip

    to_decided, to_shipped = stage_latencies_ms([refused], {}, {}, OFFSET_S)

    assert [round(x) for x in to_decided] == [12]
    assert to_shipped == []


def test_orders_without_a_decision_record_or_never_accepted_are_left_out() -> None:
    failed = OrderOutcome(lines=(("p", 1),), t_sent=1.0, http_status=503)
    undecided = accepted("c", 2.0)

    assert stage_latencies_ms([failed, undecided], {}, {}, OFFSET_S) == ([], [])


def test_stage_figures_are_percentiles_of_each_stage() -> None:
    figures = stage_figures([float(x) for x in range(1, 101)], [])

    assert figures["decided_p50_ms"] == 50.5
    assert figures["decided_p99_ms"] == 99.01
    assert math.isnan(figures["shipped_event_p99_ms"])
