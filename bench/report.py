"""The markdown report and the PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.figures import percentile

logger = logging.getLogger(__name__)

MAIN_FIGURES = (
    "decided_per_s",
    "accepted_per_s",
    "p50_ms",
    "p99_ms",
    "oversold",
    "lost",
    "failed",
    "refused",
    "refused_stock_left",
    "wrong",
    "unanswered",
)
# Open loop: the rate offered, p90 and how far behind its schedule the client sent lead.
OPEN_FIGURES = (
    "offered_per_s",
    "decided_per_s",
    "accepted_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "start_lag_p99_ms",
    "oversold",
    "lost",
    "failed",
    "not_started",
    "refused",
    "refused_stock_left",
    "wrong",
    "unanswered",
)
STAGE_FIGURES = (
    "cpu_ms_per_order",
    "decided_p50_ms",
    "decided_p99_ms",
    "shipped_event_p50_ms",
    "shipped_event_p99_ms",
)
LIMIT_LABELS = {
    "kafka_produce_msgs_per_s": "Kafka produce (ProducerPerformance, 200 B, acks=all), msgs/s",
    "kafka_consume_msgs_per_s": "Kafka consume (ConsumerPerformance), msgs/s",
    "postgres_copy_rows_per_s": "PostgreSQL COPY into a logged table, rows/s",
    "falcon_bare_req_per_s": "bare Falcon endpoint under gunicorn, req/s",
}


def stage_lines(by_system: dict[str, dict[str, Any]]) -> list[str]:
    """CPU per order and, where the system has topics to read, latency per pipeline stage."""
    rows = [
        (system, figures)
        for system, figures in by_system.items()
        if "skipped" not in figures and any(f in figures for f in STAGE_FIGURES)
    ]
    if not rows:
        return []
    title = "CPU per decided order (every component but the load generator), latency per stage:"
    out = ["", title, ""]
    out.append("| system | " + " | ".join(STAGE_FIGURES) + " |")
    out.append("|---" * (len(STAGE_FIGURES) + 1) + "|")
    for system, figures in rows:
        cells = " | ".join(_fmt(figures.get(f)) for f in STAGE_FIGURES)
        out.append(f"| {system} | {cells} |")
    return out


@dataclass
class ScenarioRun:
    """One system through one scenario: its figures and what the plots need."""

    figures: dict[str, Any]
    series: list[int]
    latencies_ms: list[float]
    failures: dict[str, int]
    reasons: dict[str, int]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def _measured(by_system: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The first system's figures that were measured ({} when every system was skipped)."""
    return next((f for f in by_system.values() if "skipped" not in f), {})


def scenario_mode(by_system: Mapping[str, Mapping[str, Any]]) -> str:
    """``open`` or ``closed`` (figures from before the mode was recorded: closed)."""
    return str(_measured(by_system).get("mode", "closed"))


def mode_line(by_system: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence: which load produced this scenario's figures."""
    figures = _measured(by_system)
    if figures.get("mode", "closed") == "open":
        return (
            f"Open loop: {_fmt(figures.get('offered_per_s'))} orders/s offered "
            f"({figures.get('arrivals', 'even')} arrivals), at most "
            f"{_fmt(figures.get('concurrency'))} orders in flight; latency from each order's "
            "scheduled start to its final answer."
        )
    buyers = figures.get("concurrency")
    who = f"{_fmt(buyers)} buyers" if buyers is not None else "buyers"
    return f"Closed loop: {who}, each waits for its answer; latency from POST to final answer."


def markdown(summary: Mapping[str, Any]) -> str:
    out = ["# orderstream benchmark", ""]
    machine, run = summary.get("machine", {}), summary.get("run", {})
    out.append(
        f"Run `{run.get('run_id')}` in {run.get('seconds')} s on {machine.get('cpus')} CPUs, "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}; load average at start "
        f"{machine.get('load_average_at_start')}. Load: {run.get('load')}; "
        f"baselines served with {run.get('tuning')}. "
        f"Load generator: {run.get('load_generator')}."
    )
    out.append("")
    for scenario, by_system in summary["scenarios"].items():
        columns = OPEN_FIGURES if scenario_mode(by_system) == "open" else MAIN_FIGURES
        out += [f"## {scenario}", "", mode_line(by_system), ""]
        out += ["| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        cpu_cols: set[str] = set()
        for system, figures in by_system.items():
            if "skipped" in figures:
                out.append(f"| {system} | skipped: {figures['skipped']} |")
                continue
            cpu_cols |= {k for k in figures if k.startswith("cpu_s_")}
            out.append(f"| {system} | " + " | ".join(_fmt(figures.get(f)) for f in columns) + " |")
        if cpu_cols:
            cols = sorted(cpu_cols)
            out += ["", "CPU seconds during the load, per component:", ""]
            out.append("| system | " + " | ".join(c.removeprefix("cpu_s_") for c in cols) + " |")
            out.append("|---" * (len(cols) + 1) + "|")
            for system, figures in by_system.items():
                if "skipped" not in figures:
                    out.append(
                        f"| {system} | " + " | ".join(_fmt(figures.get(c)) for c in cols) + " |"
                    )
        out += stage_lines(by_system)
        out += [
            "",
            f"![throughput](throughput_{scenario}.png) ![latency](latency_{scenario}.png)",
            "",
        ]
    limits = summary.get("limits", {})
    if limits:
        out += ["## Limits (same run)", "", "| limit | value |", "|---|---|"]
        out += [f"| {LIMIT_LABELS.get(k, k)} | {_fmt(v)} |" for k, v in limits.items()]
        out.append("")
    ratios = summary.get("ratios", {})
    if ratios:
        out += [
            "## orderstream as a fraction of the limits",
            "",
            "| scenario | ratio | value |",
            "|---|---|---|",
        ]
        for scenario, row in ratios.items():
            out += [f"| {scenario} | {k} | {v:.3g} |" for k, v in row.items()]
        out.append("")
    out += [
        "Figures: `decided_per_s` = orders whose final answer the client saw and the system's "
        "own database agrees with (shipped rows or none), per second from the first start to "
        "the last answer; latencies are from an order's start (its POST in closed loop, its "
        "scheduled time in open loop, so waiting for a free connection counts) to its final "
        "answer; `offered_per_s` = the open loop's schedule; `start_lag_p99_ms` = how late "
        "the open loop sent (under the connection cap or behind a busy client); `not_started` "
        "= orders that found no free connection before the answer deadline (also in "
        "`failed`); `oversold` = units in shipped "
        "orders beyond the stock put, from each system's database; `lost` = accepted (201/202) "
        "orders with no final answer, neither seen by the client nor in the database after "
        "a further drain period (`unanswered` counts late answers too); `failed` "
        "= POSTs not accepted (busy/try again, 4xx/5xx, connection errors); `refused` = orders "
        "answered `rejected` in the POST itself, never accepted (orderstream's sold-out gate: "
        "409 with a reason), counted in `decided`, not in `failed`; `refused_stock_left` (in "
        "summary.json) = refusals naming a product that still had the units asked at the end; "
        "`wrong` = final answers the database contradicts; `cpu_ms_per_order` = CPU of every "
        "component but the load generator during the load, per decided order; "
        "`decided_p50_ms`/`decided_p99_ms` = from an order's start to its decision "
        "(orderstream: the timestamp of its record on `orders.committed` or `orders.rejected`, "
        "or its POST answer when refused at the door) and `shipped_event_*` to its record on "
        "`orders.shipped`. The machine is shared: figures are noisy.",
        "",
    ]
    return "\n".join(out)


def plot_throughput(scenario: str, runs: Mapping[str, ScenarioRun], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for system, run in runs.items():
        ax.plot(range(len(run.series)), run.series, label=system)
    ax.set(
        title=f"{scenario}: correct final answers per second",
        xlabel="seconds since the first order's start",
        ylabel="orders/s",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_latency(scenario: str, runs: Mapping[str, ScenarioRun], path: Path) -> None:
    quantiles = (50, 90, 99, 99.9)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(runs))
    for n, (system, run) in enumerate(runs.items()):
        values = [percentile(run.latencies_ms, q) if run.latencies_ms else 0 for q in quantiles]
        ax.bar([i + n * width for i in range(len(quantiles))], values, width, label=system)
    ax.set_xticks(
        [i + width * (len(runs) - 1) / 2 for i in range(len(quantiles))],
        [f"p{q:g}" for q in quantiles],
    )
    modes = {scenario_mode({system: run.figures}) for system, run in runs.items()}
    start = "scheduled start" if modes == {"open"} else "request"
    ax.set(title=f"{scenario}: {start} to final answer", ylabel="ms")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    summary: Mapping[str, Any], details: Mapping[str, Mapping[str, ScenarioRun]], out: Path
) -> Path:
    for scenario, runs in details.items():
        if runs:
            plot_throughput(scenario, runs, out / f"throughput_{scenario}.png")
            plot_latency(scenario, runs, out / f"latency_{scenario}.png")
    path = out / "report.md"
    path.write_text(markdown(summary))
    return path
