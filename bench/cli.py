"""``orderstream bench``: orderstream and the lock/Lua baselines under the same load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from bench.loadgen import ARRIVALS, CLOSED_CONCURRENCY, OPEN_CONCURRENCY, LoadConfig
from bench.runner import BenchOptions, run_bench
from bench.summary import SCENARIOS, SYSTEMS
from bench.systems import Tuning
from orderstream.core.settings import REPO_ROOT, Settings

logger = logging.getLogger(__name__)


def _split(value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(allowed)}")
    return chosen


@click.command()
@click.option("--scenarios", default=",".join(SCENARIOS), show_default=True, help="comma-separated")
@click.option("--systems", default=",".join(SYSTEMS), show_default=True, help="comma-separated")
@click.option(
    "--duration",
    default=30.0,
    show_default=True,
    help="seconds of load per system and scenario (at most)",
)
@click.option(
    "--drain", default=20.0, show_default=True, help="seconds to wait for answers after the load"
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help=f"closed loop: concurrent buyers (default {CLOSED_CONCURRENCY}); open loop: at most "
    f"this many connections = orders in flight (default {OPEN_CONCURRENCY})",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="open loop: orders/s offered on a fixed schedule for --duration (or the scenario's "
    "orders); latency counts from each order's scheduled start. Default: closed loop",
)
@click.option(
    "--arrivals",
    type=click.Choice(ARRIVALS),
    default="even",
    show_default=True,
    help="open loop: evenly spaced orders, or a Poisson process (seeded)",
)
@click.option("--wait", "wait_s", default=10.0, show_default=True, help="long-poll ?wait=S")
@click.option(
    "--prefer-wait/--no-prefer-wait",
    default=True,
    show_default=True,
    help="POST with Prefer: wait=S (systems that honour it answer the final status at once)",
)
@click.option(
    "--scale", default=1.0, show_default=True, help="multiplies every scenario's order count"
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="gunicorn workers for the baselines and bare Falcon",
)
@click.option(
    "--threads", default=16, show_default=True, help="gthread threads per worker (and DB pool size)"
)
@click.option(
    "--lua-worker-threads", default=4, show_default=True, help="baseline_lua queue worker threads"
)
@click.option(
    "--limits/--no-limits", default=True, show_default=True, help="measure Kafka, COPY, bare Falcon"
)
@click.option("--kafka-records", default=300_000, show_default=True)
@click.option(
    "--out",
    "out_dir",
    default=str(REPO_ROOT / "bench" / "results"),
    show_default=True,
    type=click.Path(),
)
def bench(
    scenarios: str,
    systems: str,
    duration: float,
    drain: float,
    concurrency: int | None,
    rate: float | None,
    arrivals: str,
    wait_s: float,
    prefer_wait: bool,
    scale: float,
    workers: int,
    threads: int,
    lua_worker_threads: int,
    limits: bool,
    kafka_records: int,
    out_dir: str,
) -> None:
    """Benchmark against the running stack (.local/stack.env): summary.json, report.md, plots."""
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python admin chatter
    settings = Settings.from_env()
    options = BenchOptions(
        scenarios=_split(scenarios, SCENARIOS),
        systems=_split(systems, SYSTEMS),
        load=LoadConfig(
            concurrency=concurrency or (CLOSED_CONCURRENCY if rate is None else OPEN_CONCURRENCY),
            duration_s=duration,
            drain_s=drain,
            wait_s=wait_s,
            prefer_wait=prefer_wait,
            rate=rate,
            arrivals=arrivals,
        ),
        tuning=Tuning(workers=workers, threads=threads, lua_worker_threads=lua_worker_threads),
        scale=scale,
        measure_limits=limits,
        kafka_records=kafka_records,
        out_dir=Path(out_dir),
    )
    summary = run_bench(settings, options)
    click.echo(json.dumps(summary["scenarios"], indent=1))
    click.echo(f"wrote {options.out_dir / 'summary.json'} and {options.out_dir / 'report.md'}")
