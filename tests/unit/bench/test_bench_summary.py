"""The summary shape: {"scenarios": {scenario: {system: {figure: value}}}}, limits, ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.exceptions import BenchError
from bench.figures import DurableRecord, OrderOutcome, compute_figures
from bench.report import ScenarioRun, markdown, write_report
from bench.summary import REQUIRED_FIGURES, build_summary, validate_summary, write_summary


def figures() -> dict[str, float | int]:
    outcome = OrderOutcome(
        lines=(("p", 1),),
        t_sent=0.0,
        http_status=202,
        order_id="o",
        final_status="shipped",
        t_final=0.2,
    )
    return compute_figures([outcome], DurableRecord(statuses={"o": "shipped"}), {"p": 1})


def test_computed_figures_carry_every_required_figure() -> None:
    assert set(REQUIRED_FIGURES) <= set(figures())


def test_summary_shape_ratios_and_json_round_trip(tmp_path: Path) -> None:
    by_system: dict[str, dict[str, Any]] = {
        "orderstream": dict(figures()),
        "baseline_lock": {"skipped": "off"},
    }
    by_system["orderstream"]["p99_ms"] = math.nan
    summary = build_summary(
        {"hot_product": by_system},
        limits={"falcon_bare_req_per_s": 10.0, "kafka_produce_msgs_per_s": 0.0},
    )
    validate_summary(summary)
    assert summary["scenarios"]["hot_product"]["orderstream"]["p99_ms"] is None
    ratio = summary["ratios"]["hot_product"]["decided_per_s/falcon_bare_req_per_s"]
    assert ratio == pytest.approx(
        summary["scenarios"]["hot_product"]["orderstream"]["decided_per_s"] / 10
    )
    assert "decided_per_s/kafka_produce_msgs_per_s" not in summary["ratios"]["hot_product"]
    path = tmp_path / "summary.json"
    write_summary(summary, path)
    assert json.loads(path.read_text())["scenarios"].keys() == {"hot_product"}


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"scenarios": {}},
        {"scenarios": {"hot_product": {}}},
        {"scenarios": {"hot_product": {"nosuch": {"decided_per_s": 1}}}},
        {"scenarios": {"hot_product": {"orderstream": {"decided_per_s": 1}}}},
        {
            "scenarios": {
                "hot_product": {"orderstream": {**{f: 1 for f in REQUIRED_FIGURES}, "p50_ms": "x"}}
            }
        },
    ],
)
def test_malformed_summaries_are_refused(broken: dict) -> None:
    with pytest.raises(BenchError):
        validate_summary(broken)


def test_report_and_plots_are_written(tmp_path: Path) -> None:
    summary = build_summary(
        {"catalog": {"baseline_lua": figures()}}, limits={"falcon_bare_req_per_s": 5.0}
    )
    run = ScenarioRun(
        figures=figures(), series=[1, 3, 2], latencies_ms=[10.0, 20.0], failures={}, reasons={}
    )
    path = write_report(summary, {"catalog": {"baseline_lua": run}}, tmp_path)
    assert "| baseline_lua |" in path.read_text()
    assert (tmp_path / "throughput_catalog.png").stat().st_size > 0
    assert (tmp_path / "latency_catalog.png").stat().st_size > 0
    assert "## catalog" in markdown(summary)
