"""The shape of ``bench/results/summary.json`` and its checks.

``{"scenarios": {scenario: {system: {figure: value}}}, "limits": {...}, "ratios": {...},
"machine": {...}, "run": {...}}``. A system that could not be measured carries
``{"skipped": reason}`` instead of figures. Figures are numbers (or null), except ``mode``
(``closed``/``open``) and ``arrivals`` (``even``/``poisson``), which tell which load made them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.exceptions import BenchError

SYSTEMS = ("orderstream", "baseline_lock", "baseline_lua")
SCENARIOS = ("hot_product", "catalog", "multi_line")
REQUIRED_FIGURES = (
    "decided_per_s",
    "p50_ms",
    "p99_ms",
    "accepted_per_s",
    "oversold",
    "lost",
    "failed",
)
# The only figures that are words: which load produced the figures (bench.runner.mode_figures).
TEXT_FIGURES = {"mode": ("closed", "open"), "arrivals": ("even", "poisson")}
# orderstream's figure -> the limit it is compared to
RATIO_TO_LIMIT = {
    "decided_per_s": (
        "falcon_bare_req_per_s",
        "kafka_produce_msgs_per_s",
        "postgres_copy_rows_per_s",
    ),
    "accepted_per_s": ("falcon_bare_req_per_s", "kafka_produce_msgs_per_s"),
}


def build_summary(
    scenarios: Mapping[str, Mapping[str, Mapping[str, Any]]],
    limits: Mapping[str, float] | None = None,
    machine: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    limits = dict(limits or {})
    return {
        "scenarios": {
            s: {system: _clean(f) for system, f in by_system.items()}
            for s, by_system in scenarios.items()
        },
        "limits": limits,
        "ratios": ratios_to_limits(scenarios, limits),
        "machine": dict(machine or {}),
        "run": dict(run or {}),
    }


def ratios_to_limits(
    scenarios: Mapping[str, Mapping[str, Mapping[str, Any]]], limits: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """orderstream's throughput as a fraction of each raw limit, per scenario."""
    ratios: dict[str, dict[str, float]] = {}
    for scenario, by_system in scenarios.items():
        figures = by_system.get("orderstream", {})
        row: dict[str, float] = {}
        for figure, limit_names in RATIO_TO_LIMIT.items():
            value = figures.get(figure)
            for limit_name in limit_names:
                limit = limits.get(limit_name)
                if (
                    isinstance(value, (int, float))
                    and isinstance(limit, (int, float))
                    and limit > 0
                ):
                    row[f"{figure}/{limit_name}"] = round(value / limit, 4)
        if row:
            ratios[scenario] = row
    return ratios


def _clean(figures: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: an undefined figure (no answers, so no percentile) becomes null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()}


def validate_summary(summary: Mapping[str, Any]) -> None:
    """Raise BenchError unless the summary has the agreed shape."""
    scenarios = summary.get("scenarios")
    if not isinstance(scenarios, Mapping) or not scenarios:
        raise BenchError("summary has no scenarios")
    for scenario, by_system in scenarios.items():
        if not isinstance(by_system, Mapping) or not by_system:
            raise BenchError(f"scenario {scenario!r} has no systems")
        for system, figures in by_system.items():
            if system not in SYSTEMS:
                raise BenchError(f"unknown system {system!r} in {scenario!r}")
            if not isinstance(figures, Mapping):
                raise BenchError(f"{scenario}/{system} is not a mapping")
            if "skipped" in figures:
                continue
            missing = [f for f in REQUIRED_FIGURES if f not in figures]
            if missing:
                raise BenchError(f"{scenario}/{system} lacks {missing}")
            for name, value in figures.items():
                if name in TEXT_FIGURES:
                    allowed = TEXT_FIGURES[name]
                    if value not in allowed:
                        raise BenchError(f"{scenario}/{system}/{name} not in {allowed}: {value!r}")
                elif value is not None and not isinstance(value, (int, float)):
                    raise BenchError(f"{scenario}/{system}/{name} is not a number: {value!r}")


def write_summary(summary: Mapping[str, Any], path: Path) -> None:
    validate_summary(summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
