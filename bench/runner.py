"""One benchmark run: limits, then every system through every scenario, then summary and report."""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tqdm import tqdm

from bench import limits as limit_tools
from bench.catalog import put_products, wait_available
from bench.cpu import cpu_seconds
from bench.exceptions import SystemUnavailable
from bench.figures import (
    OrderOutcome,
    compute_figures,
    failure_kinds,
    is_lost,
    latency_ms,
    open_loop_figures,
    reason_counts,
    throughput_series,
)
from bench.ledger import read_durable
from bench.loadgen import CLOSED_CONCURRENCY, LoadConfig, run, run_orders
from bench.report import ScenarioRun, write_report
from bench.scenarios import Scenario, build
from bench.summary import SCENARIOS, SYSTEMS, build_summary, write_summary
from bench.systems import BARE_FALCON_PORT, RunningSystem, Tuning, start
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchOptions:
    scenarios: Sequence[str] = SCENARIOS
    systems: Sequence[str] = SYSTEMS
    load: LoadConfig = field(default_factory=LoadConfig)
    tuning: Tuning = field(default_factory=Tuning)
    scale: float = 1.0
    measure_limits: bool = True
    kafka_records: int = 300_000
    copy_rows: int = 200_000
    falcon_seconds: float = 8.0
    out_dir: Path = Path("bench/results")


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def hammer_clients(load: LoadConfig) -> int:
    """Clients for the bare Falcon limit: the buyers in closed loop, else the closed default."""
    return load.concurrency if load.rate is None else CLOSED_CONCURRENCY


def load_generator(load: LoadConfig) -> str:
    """How the load was offered, in words (summary and report)."""
    client = (
        "one process, asyncio on uvloop, one keep-alive HTTP/1.1 connection per order in flight "
        "(requests as pre-formatted bytes, responses parsed by httptools)"
    )
    if load.rate is None:
        return f"{client}; closed loop: {load.concurrency} buyers, each waits for its answer"
    return (
        f"{client}; open loop: {load.rate:g} orders/s offered ({load.arrivals} arrivals), at "
        f"most {load.concurrency} connections/orders in flight; latency from each order's "
        "scheduled start"
    )


def mode_figures(load: LoadConfig) -> dict[str, Any]:
    """Which load produced the figures: they lead every system's figures in the summary."""
    if load.rate is None:
        return {"mode": "closed", "concurrency": load.concurrency}
    return {
        "mode": "open",
        "offered_per_s": load.rate,
        "arrivals": load.arrivals,
        "concurrency": load.concurrency,
    }


def measure_limits(settings: Settings, options: BenchOptions) -> dict[str, float]:
    """Each limit is best effort: one that cannot be measured is logged and left out."""
    found: dict[str, float] = {}
    steps = tqdm(total=3, desc="limits", unit="step")
    try:
        found.update(limit_tools.kafka_rates(settings.kafka_bootstrap, options.kafka_records))
    except Exception as exc:
        logger.warning("kafka perf tools: %s", exc)
    steps.update(1)
    try:
        found["postgres_copy_rows_per_s"] = round(
            limit_tools.copy_rows_per_s(settings.database_url, options.copy_rows), 1
        )
    except Exception as exc:
        logger.warning("postgres COPY: %s", exc)
    steps.update(1)
    try:
        with tqdm(desc="falcon bare", unit="req", leave=False) as bar:
            rate, loadgen_share = limit_tools.falcon_bare_rate(
                BARE_FALCON_PORT, options.tuning.workers, options.tuning.threads,
                options.falcon_seconds, hammer_clients(options.load),
                options.out_dir / "logs" / "falcon_bare.log", bar.update,
            )  # fmt: skip
        found["falcon_bare_req_per_s"] = round(rate, 1)
        found["falcon_bare_loadgen_core_share"] = round(loadgen_share, 2)
    except Exception as exc:
        logger.warning("bare Falcon: %s", exc)
    steps.update(1)
    steps.close()
    return found


def load_scenario(
    system: RunningSystem, scenario: Scenario, load: LoadConfig
) -> tuple[list[OrderOutcome], dict[str, float]]:
    """Stock the catalog, place the orders; returns what the client saw and CPU per component."""
    target = system.target
    with tqdm(
        total=len(scenario.stock),
        desc=f"{target.name} {scenario.name}: stock",
        unit="product",
        leave=False,
    ) as bar:
        run(put_products(target, scenario.stock, tick=bar.update))
    if system.wait_for_catalog:
        run(wait_available(target, scenario.stock))
    before = system.sampler.snapshot()
    with tqdm(
        total=scenario.orders, desc=f"{target.name} {scenario.name}: orders", unit="order"
    ) as bar:
        outcomes = run(
            run_orders(target, scenario.order_lines(), scenario.orders, load, bar.update)
        )
    return outcomes, cpu_seconds(before, system.sampler.snapshot(own_first=True))


def evaluate(
    system: RunningSystem,
    scenario: Scenario,
    outcomes: list[OrderOutcome],
    cpu: dict[str, float],
    settle_s: float = 0.0,
    load: LoadConfig | None = None,
) -> ScenarioRun:
    """The figures, with oversold and lost read from the system's own database.

    Accepted orders the client never saw answered get up to ``settle_s`` more seconds to reach a
    terminal status in the database (late, not lost) before they are counted lost.
    """
    accepted_ids = [o.order_id for o in outcomes if o.accepted and o.order_id]
    durable = read_durable(system.database_url, accepted_ids, list(scenario.stock))
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and any(is_lost(o, durable.statuses) for o in outcomes):
        time.sleep(1.0)
        durable = read_durable(system.database_url, accepted_ids, list(scenario.stock))
    figures: dict[str, Any] = mode_figures(load) if load is not None else {}
    figures.update(compute_figures(outcomes, durable, scenario.stock, cpu))
    if load is not None and load.rate is not None:
        figures.update(open_loop_figures(outcomes))
    if system.stages is not None:
        try:
            figures.update(system.stages(outcomes))
        except Exception as exc:  # best effort, like the limits: the run's figures stand
            logger.warning("%s: latency per stage: %s", system.target.name, exc)
    latencies = [latency_ms(o) for o in outcomes if o.answered]
    series = throughput_series(outcomes, durable)
    return ScenarioRun(figures, series, latencies, failure_kinds(outcomes), reason_counts(outcomes))


def run_scenario(system: RunningSystem, scenario: Scenario, load: LoadConfig) -> ScenarioRun:
    if load.rate is not None and scenario.orders < load.rate * load.duration_s:
        logger.warning(
            "%s: %d orders at %g/s last %.1f s, less than --duration %g s (raise --scale)",
            scenario.name, scenario.orders, load.rate, scenario.orders / load.rate,
            load.duration_s,
        )  # fmt: skip
    outcomes, cpu = load_scenario(system, scenario, load)
    return evaluate(system, scenario, outcomes, cpu, settle_s=load.drain_s, load=load)


def run_bench(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    started = time.monotonic()
    run_id = time.strftime("%m%d%H%M%S")
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    limits = measure_limits(settings, options) if options.measure_limits else {}
    results: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in options.scenarios}
    details: dict[str, dict[str, ScenarioRun]] = {s: {} for s in options.scenarios}
    for system_name in options.systems:
        try:
            with start(system_name, settings, options.tuning, out / "logs") as system:
                for scenario_name in options.scenarios:
                    scenario = build(scenario_name, run_id, options.scale)
                    outcome = run_scenario(system, scenario, options.load)
                    results[scenario_name][system_name] = outcome.figures
                    details[scenario_name][system_name] = outcome
                    logger.info("%s %s: %s", system_name, scenario_name, outcome.figures)
        except SystemUnavailable as exc:
            logger.warning("skipping %s: %s", system_name, exc)
            for scenario_name in options.scenarios:
                results[scenario_name][system_name] = {"skipped": str(exc)}
    run_info = {
        "run_id": run_id,
        "seconds": round(time.monotonic() - started, 1),
        "load": asdict(options.load),
        "tuning": asdict(options.tuning),
        "scale": options.scale,
        "load_generator": load_generator(options.load),
        "mode": options.load.mode,
        "failures": {s: {n: r.failures for n, r in by.items()} for s, by in details.items()},
        "answers": {s: {n: r.reasons for n, r in by.items()} for s, by in details.items()},
    }
    summary = build_summary(results, limits, machine_info(), run_info)
    write_summary(summary, out / "summary.json")
    write_report(summary, details, out)
    return summary
