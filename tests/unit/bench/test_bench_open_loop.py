"""Open loop: the arrival schedule, latency from the scheduled start, the figures and report."""

from __future__ import annotations

import itertools
import statistics

import pytest

from bench.exceptions import BenchError
from bench.figures import (
    NOT_STARTED,
    DurableRecord,
    OrderOutcome,
    compute_figures,
    open_loop_figures,
)
from bench.loadgen import LoadConfig, arrival_offsets
from bench.report import markdown
from bench.runner import load_generator, mode_figures
from bench.summary import build_summary, validate_summary

LINE = (("p1", 1),)


def test_even_arrivals_are_evenly_spaced_from_zero() -> None:
    offsets = list(itertools.islice(arrival_offsets(250.0), 5))
    assert offsets == pytest.approx([0.0, 0.004, 0.008, 0.012, 0.016])
    # no drift: order n is due at exactly n / rate
    assert next(itertools.islice(arrival_offsets(3.0), 300_000, None)) == pytest.approx(100_000)


def test_poisson_arrivals_are_reproducible_increasing_and_average_the_rate() -> None:
    first = list(itertools.islice(arrival_offsets(1000.0, "poisson", seed=4), 20_000))
    assert first == list(itertools.islice(arrival_offsets(1000.0, "poisson", seed=4), 20_000))
    assert first[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(g >= 0 for g in gaps)
    assert statistics.fmean(gaps) == pytest.approx(0.001, rel=0.05)
    assert statistics.pstdev(gaps) == pytest.approx(0.001, rel=0.1)  # exponential: sd = mean


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError):
        next(arrival_offsets(0.0))
    with pytest.raises(ValueError):
        next(arrival_offsets(10.0, "bursty"))
    with pytest.raises(ValueError):
        LoadConfig(rate=-1.0)
    with pytest.raises(ValueError):
        LoadConfig(arrivals="bursty")
    assert LoadConfig().mode == "closed" and LoadConfig(rate=5.0).mode == "open"


def shipped(order_id: str, scheduled: float | None, sent: float, final: float) -> OrderOutcome:
    return OrderOutcome(
        lines=LINE,
        t_sent=sent,
        t_scheduled=scheduled,
        http_status=202,
        order_id=order_id,
        t_accepted=sent + 0.01,
        final_status="shipped",
        t_final=final,
    )


def test_latency_counts_from_the_scheduled_start_not_the_send() -> None:
    # due at 0.0, could only be sent at 0.3 (every connection busy), answered at 0.5
    late = shipped("o1", scheduled=0.0, sent=0.3, final=0.5)
    durable = DurableRecord(statuses={"o1": "shipped"}, committed_units={"p1": 1})
    figures = compute_figures([late], durable, {"p1": 1})
    assert figures["p50_ms"] == pytest.approx(500.0)
    # closed loop (no schedule): from the send, as before
    closed = shipped("o1", scheduled=None, sent=0.3, final=0.5)
    assert compute_figures([closed], durable, {"p1": 1})["p50_ms"] == pytest.approx(200.0)


def test_rates_span_from_the_first_scheduled_start() -> None:
    outcomes = [
        shipped(f"o{i}", scheduled=i * 0.5, sent=i * 0.5 + 0.4, final=i * 0.5 + 1) for i in range(5)
    ]
    durable = DurableRecord(statuses={f"o{i}": "shipped" for i in range(5)})
    figures = compute_figures(outcomes, durable, {"p1": 5})
    assert figures["decided_per_s"] == pytest.approx(5 / 3.0, abs=0.01)  # 0.0 .. 3.0


def test_open_loop_figures_start_lag_and_not_started() -> None:
    outcomes = [
        shipped("a", scheduled=1.0, sent=1.0, final=1.2),
        shipped("b", scheduled=2.0, sent=2.1, final=2.3),
        OrderOutcome(lines=LINE, t_sent=3.0, t_scheduled=3.0, error=NOT_STARTED),
    ]
    figures = open_loop_figures(outcomes)
    assert figures["start_lag_p50_ms"] == pytest.approx(50.0)
    assert figures["start_lag_p99_ms"] == pytest.approx(99.0)
    assert figures["not_started"] == 1
    everything = compute_figures(
        outcomes, DurableRecord(statuses={"a": "shipped", "b": "shipped"}), {"p1": 5}
    )
    assert everything["failed"] == 1  # a not-started order was offered and not accepted


def test_mode_figures_validate_and_the_report_names_the_mode() -> None:
    outcome = shipped("o", scheduled=0.0, sent=0.0, final=0.2)
    computed = compute_figures([outcome], DurableRecord(statuses={"o": "shipped"}), {"p1": 1})
    open_load = LoadConfig(concurrency=300, rate=1000.0)
    open_figures = {
        **mode_figures(open_load),
        **computed,
        **open_loop_figures([outcome]),
    }
    closed_figures = {**mode_figures(LoadConfig()), **computed}
    assert open_figures["mode"] == "open" and open_figures["offered_per_s"] == 1000.0
    assert closed_figures["mode"] == "closed" and closed_figures["concurrency"] == 128

    summary = build_summary(
        {"catalog": {"orderstream": open_figures}, "hot_product": {"orderstream": closed_figures}},
        run={"load_generator": load_generator(open_load)},
    )
    validate_summary(summary)
    text = markdown(summary)
    assert (
        "Open loop: 1,000.0 orders/s offered (even arrivals), at most 300 orders in flight" in text
    )
    assert "| offered_per_s |" in text and "start_lag_p99_ms" in text
    assert "Closed loop: 128 buyers" in text
    assert "open loop: 1000 orders/s offered" in load_generator(open_load)

    with pytest.raises(BenchError):
        validate_summary(
            build_summary({"catalog": {"orderstream": {**open_figures, "mode": "ajar"}}})
        )


def test_report_of_figures_without_a_mode_reads_as_closed_loop() -> None:
    outcome = shipped("o", scheduled=None, sent=0.0, final=0.2)
    computed = compute_figures([outcome], DurableRecord(statuses={"o": "shipped"}), {"p1": 1})
    text = markdown(build_summary({"catalog": {"baseline_lua": computed}}))
    assert "Closed loop: buyers, each waits for its answer" in text
