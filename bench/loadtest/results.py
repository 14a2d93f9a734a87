"""Figures of a ``make loadtest`` run, from Locust's CSVs and the stack's CPU snapshots."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

AGGREGATED = "Aggregated"
ORDERS = "POST /v1/orders"
# goal name -> (figure, comparison, bound)
GOALS: dict[str, tuple[str, str, float]] = {
    "success": ("success_pct", ">=", 99.9),
    "average": ("average_ms", "<=", 200.0),
    "p99": ("p99_ms", "<=", 500.0),
}
LOCUST = "locust"  # the load generator's own CPU, kept apart from the stack's

Row = dict[str, str]
CpuSnapshot = Mapping[str, Mapping[int, float]]


@dataclass(frozen=True)
class LoadtestWindow:
    """The steady window: wall-clock start and end, and CPU seconds per program at each."""

    t0: float
    t1: float
    before: CpuSnapshot
    after: CpuSnapshot


def _number(text: str) -> float:
    return math.nan if text in ("", "N/A") else float(text)


def read_stats(path: Path) -> dict[str, Row]:
    """``locust_stats.csv``: one row per request name, and the ``Aggregated`` row."""
    with path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def read_history(path: Path) -> list[Row]:
    """``locust_stats_history.csv`` (``--csv-full-history``): a row per name per second."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def count_at(history: list[Row], name: str, at: float) -> float:
    """The cumulative request count of ``name`` at the last history row at or before ``at``."""
    counts = [
        float(r["Total Request Count"])
        for r in history
        if r["Name"] == name and float(r["Timestamp"]) <= at
    ]
    return counts[-1] if counts else 0.0


def cpu_seconds(window: LoadtestWindow) -> dict[str, float]:
    """CPU seconds per program within the window; a process born in it counts fully."""
    used = {}
    for program, times in window.after.items():
        start = window.before.get(program, {})
        used[program] = sum(max(0.0, end - start.get(pid, 0.0)) for pid, end in times.items())
    return used


def request_figures(row: Row) -> dict[str, float]:
    requests, failures = _number(row["Request Count"]), _number(row["Failure Count"])
    return {
        "requests": requests,
        "failures": failures,
        "success_pct": 100.0 * (requests - failures) / requests if requests else math.nan,
        "average_ms": _number(row["Average Response Time"]),
        "p50_ms": _number(row["50%"]),
        "p99_ms": _number(row["99%"]),
        "max_ms": _number(row["Max Response Time"]),
        "per_s": _number(row["Requests/s"]),
    }


def goal_met(value: float, comparison: str, bound: float) -> bool:
    if math.isnan(value):
        return False
    return value >= bound if comparison == ">=" else value <= bound


def summarise(
    stats: Mapping[str, Row],
    history: list[Row],
    window: LoadtestWindow,
    options: Mapping[str, Any],
    warmup: Mapping[str, Row] | None = None,
) -> dict[str, Any]:
    """Every figure of the run: per request kind, the whole, the goals and CPU per order.
    ``warmup`` is the warm-up run's ``locust_stats.csv``: reported, never judged."""
    overall = request_figures(stats[AGGREGATED])
    seconds = window.t1 - window.t0
    orders = count_at(history, ORDERS, window.t1) - count_at(history, ORDERS, window.t0)
    cpu = cpu_seconds(window)
    stack_cpu = sum(s for program, s in cpu.items() if program != LOCUST)
    return {
        "options": dict(options),
        "requests": {name: request_figures(row) for name, row in stats.items()},
        "overall": overall,
        "goals": {
            name: {
                "figure": figure,
                "goal": f"{comparison} {bound:g}",
                "value": overall[figure],
                "met": goal_met(overall[figure], comparison, bound),
            }
            for name, (figure, comparison, bound) in GOALS.items()
        },
        "window": {
            "seconds": round(seconds, 1),
            "orders": orders,
            "orders_per_s": round(orders / seconds, 1) if seconds > 0 else math.nan,
            "cpu_s": {program: round(s, 2) for program, s in sorted(cpu.items())},
            "stack_cpu_ms_per_order": round(stack_cpu * 1000 / orders, 3) if orders else math.nan,
            "stack_cores": round(stack_cpu / seconds, 2) if seconds > 0 else math.nan,
            "locust_core_share": round(cpu.get(LOCUST, 0.0) / seconds, 2) if seconds else math.nan,
        },
        "warmup": request_figures(warmup[AGGREGATED]) if warmup else None,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.1f}"
    return str(value)


def render_report(summary: Mapping[str, Any]) -> str:
    options, window = summary["options"], summary["window"]
    out = [
        "# orderstream load test",
        "",
        f"{options['users']} Locust buyers (think time {options['think']} s, started at "
        f"{options['spawn_rate']:g}/s), each: `GET /v1/products/{{id}}`, `POST /v1/orders`, "
        f"`GET /v1/orders/{{id}}?wait={options['wait']:g}`; {options['products']} products of "
        f"{options['stock']} units; {options['duration']:g} s after the ramp.",
        "",
        *_warmup_lines(options, summary.get("warmup")),
        "| goal | figure | value | met |",
        "|---|---|---|---|",
    ]
    for name, goal in summary["goals"].items():
        out.append(f"| {name} {goal['goal']} | {goal['figure']} | {_fmt(goal['value'])} | "
                   f"{'yes' if goal['met'] else 'no'} |")  # fmt: skip
    heads = ("requests", "failures", "success %", "avg ms", "p50 ms", "p99 ms", "max ms", "per s")
    out += ["", "| request | " + " | ".join(heads) + " |"]
    out.append("|---" * 9 + "|")
    for name, r in summary["requests"].items():
        cells = [r[k] for k in ("requests", "failures", "success_pct", "average_ms", "p50_ms",
                                "p99_ms", "max_ms", "per_s")]  # fmt: skip
        out.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    out += [
        "",
        f"Steady window ({window['seconds']} s, from 5 s after the ramp): {_fmt(window['orders'])} "
        f"orders, {_fmt(window['orders_per_s'])}/s; the stack used {window['stack_cores']} cores, "
        f"{window['stack_cpu_ms_per_order']} ms of CPU per order; Locust used "
        f"{window['locust_core_share']} of a core. CPU seconds per program: "
        + ", ".join(f"{p} {s}" for p, s in window["cpu_s"].items()) + ".",
        "",
        "Latencies are Locust's, from its send to the whole answer, so a busy Locust process adds "
        "to them. Locust's own report: `locust.html`; over time: `loadtest.png`.",
        "",
    ]  # fmt: skip
    return "\n".join(out)


def _warmup_lines(options: Mapping[str, Any], warmup: Mapping[str, float] | None) -> list[str]:
    if not options.get("warmup"):
        return ["No warm-up ran: the figures include the stack's cold start.", ""]
    line = (
        f"Measured after a warm-up of the same buyers for {options['warmup']:g} s after their "
        "ramp, on a catalog of its own, so that Kafka's JIT and the programs' caches are warm, "
        "as on a stack that has served before. The warm-up is not judged"
    )
    if warmup:
        line += (f": {_fmt(warmup['requests'])} requests, {_fmt(warmup['success_pct'])} % "
                 f"success, average {_fmt(warmup['average_ms'])} ms, p99 "
                 f"{_fmt(warmup['p99_ms'])} ms")  # fmt: skip
    return [line + ".", ""]


def plot_history(history: list[Row], path: Path) -> None:
    """Requests per second and the current p50/p99 over time, all requests together."""
    rows = [r for r in history if r["Name"] == AGGREGATED]
    if not rows:
        return
    start = float(rows[0]["Timestamp"])
    t = [float(r["Timestamp"]) - start for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(t, [_number(r["Requests/s"]) for r in rows], label="requests/s")
    top.plot(t, [_number(r["Failures/s"]) for r in rows], label="failures/s")
    top.plot(t, [float(r["User Count"]) / 10 for r in rows], label="buyers / 10", linestyle=":")
    top.legend()
    for column in ("50%", "99%"):
        bottom.plot(t, [_number(r[column]) for r in rows], label=f"p{column.rstrip('%')} ms")
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("ms")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
