"""The figure computations: percentiles, oversold, lost, correct answers, rates."""

from __future__ import annotations

import math

import pytest

from bench.figures import (
    DurableRecord,
    OrderOutcome,
    compute_figures,
    failure_kinds,
    oversold_units,
    percentile,
    throughput_series,
)

LINE = (("p1", 1),)


def accepted(
    order_id: str, t_sent: float, final: str | None, t_final: float | None
) -> OrderOutcome:
    return OrderOutcome(
        lines=LINE,
        t_sent=t_sent,
        http_status=202,
        order_id=order_id,
        t_accepted=t_sent + 0.01,
        final_status=final,
        t_final=t_final,
    )


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_percentile_of_nothing_is_nan_and_out_of_range_raises() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_oversold_counts_units_beyond_stock_per_product() -> None:
    committed = {"a": 12, "b": 3, "c": 2}
    stock = {"a": 10, "b": 5}  # c was never stocked: all of it is oversold
    assert oversold_units(committed, stock) == 2 + 0 + 2
    assert oversold_units({}, stock) == 0


def test_lost_is_accepted_without_any_final_answer() -> None:
    outcomes = [
        accepted("o1", 0.0, "shipped", 0.5),  # answered
        accepted("o2", 0.0, None, None),  # client never saw it, database says shipped: not lost
        accepted("o3", 0.0, None, None),  # pending in the database: lost
        accepted("o4", 0.0, None, None),  # nowhere: lost
        OrderOutcome(lines=LINE, t_sent=0.0, http_status=503),  # never accepted: failed, not lost
    ]
    durable = DurableRecord(
        statuses={"o1": "shipped", "o2": "shipped", "o3": "accepted"}, committed_units={"p1": 2}
    )
    figures = compute_figures(outcomes, durable, {"p1": 5})
    assert figures["lost"] == 2
    assert figures["unanswered"] == 3
    assert figures["failed"] == 1
    assert figures["accepted"] == 4
    assert figures["oversold"] == 0


def test_a_final_answer_the_database_contradicts_is_wrong_not_decided() -> None:
    outcomes = [
        accepted("ok-shipped", 0.0, "shipped", 1.0),
        accepted("ok-rejected", 0.0, "rejected", 1.0),  # no row: consistent with rejected
        accepted("bad-shipped", 0.0, "shipped", 1.0),  # told shipped, no shipped row
        accepted("bad-rejected", 0.0, "rejected", 1.0),  # told rejected, but shipped in the DB
    ]
    durable = DurableRecord(statuses={"ok-shipped": "shipped", "bad-rejected": "shipped"})
    figures = compute_figures(outcomes, durable, {"p1": 10})
    assert figures["decided"] == 2
    assert figures["wrong"] == 2
    assert figures["shipped"] == 1 and figures["rejected"] == 1


def test_rates_and_latencies_span_first_request_to_last_answer() -> None:
    outcomes = [accepted(f"o{i}", float(i), "shipped", i + 0.1 * (i + 1)) for i in range(10)]
    durable = DurableRecord(statuses={f"o{i}": "shipped" for i in range(10)})
    figures = compute_figures(outcomes, durable, {"p1": 10}, {"redis": 1.234})
    # first request at 0.0, last answer at 9 + 1.0 = 10.0
    assert figures["decided_per_s"] == pytest.approx(1.0)
    assert figures["accepted_per_s"] == pytest.approx(10 / 9.01, rel=1e-3)
    assert figures["p50_ms"] == pytest.approx(550.0)
    assert figures["p99_ms"] == pytest.approx(991.0)
    assert figures["cpu_s_redis"] == 1.23


def test_no_answers_gives_zero_rates_and_nan_latency() -> None:
    outcomes = [OrderOutcome(lines=LINE, t_sent=0.0, error="ClientConnectorError")]
    figures = compute_figures(outcomes, DurableRecord(), {})
    assert figures["decided_per_s"] == 0.0
    assert math.isnan(figures["p50_ms"])
    assert failure_kinds(outcomes) == {"ClientConnectorError": 1}


def test_throughput_series_buckets_correct_answers_by_second() -> None:
    outcomes = [accepted("a", 0.0, "shipped", 0.5), accepted("b", 0.2, "shipped", 2.7)]
    outcomes.append(accepted("c", 0.3, "shipped", 0.9))  # wrong: no shipped row
    durable = DurableRecord(statuses={"a": "shipped", "b": "shipped"})
    assert throughput_series(outcomes, durable) == [1, 0, 1]


def refused(
    t_sent: float, product: str = "p1", quantity: int = 1, reason: str = "out_of_stock"
) -> OrderOutcome:
    """A POST answered 409 by orderstream's sold-out gate, as the load generator records it."""
    return OrderOutcome(
        lines=((product, quantity),),
        t_sent=t_sent,
        http_status=409,
        final_status="rejected",
        reason=reason,
        t_final=t_sent + 0.002,
        refused_product=product,
    )


def test_an_order_refused_at_the_door_is_decided_not_accepted_and_not_failed() -> None:
    outcomes = [
        accepted("o1", 0.0, "shipped", 0.1),
        refused(0.2),
        refused(0.3),
        OrderOutcome(lines=LINE, t_sent=0.4, http_status=409),  # a 409 without a reason
    ]
    figures = compute_figures(outcomes, DurableRecord({"o1": "shipped"}, {"p1": 1}), {"p1": 1})

    assert (figures["decided"], figures["rejected"], figures["refused"]) == (3, 2, 2)
    assert (figures["accepted"], figures["failed"], figures["lost"]) == (1, 1, 0)
    assert figures["refused_stock_left"] == 0  # p1 sold its one unit
    assert failure_kinds(outcomes) == {"http_409": 1}


def test_refusals_of_a_product_with_the_units_asked_left_are_counted() -> None:
    outcomes = [refused(0.0, "p1"), refused(0.1, "p2"), refused(0.2, "p3", quantity=2)]
    durable = DurableRecord({}, {"p1": 3, "p2": 1, "p3": 4})

    figures = compute_figures(outcomes, durable, {"p1": 3, "p2": 2, "p3": 5})

    # p2 ended with the unit it was asked for; p3 with one unit, fewer than the two asked
    assert figures["refused_stock_left"] == 1


def test_refusals_for_other_reasons_say_nothing_about_stock_left() -> None:
    outcomes = [refused(0.0, "p1", reason="discontinued"), refused(0.1, "p1", 3, "limit_exceeded")]

    figures = compute_figures(outcomes, DurableRecord({}, {}), {"p1": 5})

    assert (figures["refused"], figures["refused_stock_left"]) == (2, 0)
