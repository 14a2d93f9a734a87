"""``python -m bench.loadtest`` (``make loadtest``): Locust buyers against the running stack.

Stocks a catalog through the admin API, then runs Locust headless (``locustfile.py``: look at
a product, buy it, check the order with ``?wait``) with ``--users`` buyers for the ramp plus
``--duration`` seconds, after a warm-up of the same load (``--warmup``, on a catalog of its
own, reported apart) so that a freshly started JVM is not what is measured. Writes Locust's
own HTML report and CSVs, a plot over time, and ``summary.json``/``report.md``: success,
average and p99 against the goals, orders per second, and the stack's CPU per order over the
steady window (from ``/proc``, per program, with Locust's own CPU apart). Never run from tests
as a measure: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from bench.catalog import put_products, wait_available
from bench.cpu import cpu_time
from bench.idle import program_pids, snapshot
from bench.loadgen import Target, run
from bench.loadtest.results import (
    GOALS,
    LoadtestWindow,
    plot_history,
    read_history,
    read_stats,
    render_report,
    summarise,
)
from orderstream.core.settings import REPO_ROOT, Settings
from orderstream.stack.config import StackConfig

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__)
    parser.add_argument("--users", type=int, default=1000, help="simulated buyers (1000)")
    parser.add_argument("--spawn-rate", type=float, default=100.0, help="buyers started per s")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of load after the ramp (60)"
    )
    parser.add_argument(
        "--warmup", type=float, default=30.0,
        help="seconds of the same load after its ramp, on a catalog of its own, before the "
        "measured run; reported apart, never judged; 0 for none (30)",
    )  # fmt: skip
    parser.add_argument("--products", type=int, default=100, help="products in the catalog")
    parser.add_argument("--stock", type=int, default=100_000, help="units of each product")
    parser.add_argument("--think", default="1,2", help="think time between buys, low,high s")
    parser.add_argument("--wait", type=float, default=5.0, help="the GET's ?wait=S (5)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench" / "results" / "loadtest",
        help="where the reports go",
    )  # fmt: skip
    return parser.parse_args(argv)


def stock_catalog(target: Target, products: int, units: int) -> list[str]:
    run_id = uuid.uuid4().hex[:6]
    stock = {f"lt{run_id}-{i}": units for i in range(products)}
    run(put_products(target, stock))
    run(wait_available(target, stock))
    return list(stock)


def locust_command(args: argparse.Namespace, host: str, run_s: float, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{round(run_s)}s", "--stop-timeout", "10",
        "--host", host, "--csv", str(out / "locust"), "--csv-full-history",
        "--html", str(out / "locust.html"), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip


def cpu_of(pids: dict[str, int], locust: psutil.Process) -> dict[str, dict[int, float]]:
    taken = snapshot(pids)
    taken["locust"] = {locust.pid: cpu_time(locust)}
    return taken


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    cfg = StackConfig.from_env(os.environ)
    pids = program_pids(cfg)
    if not pids:
        raise SystemExit(f"no running stack under {cfg.supervisor_conf}: run `make up` first")
    url = settings.ingress_url.rstrip("/")
    target = Target("orderstream", url, settings.storefront_key, settings.admin_key)
    products = stock_catalog(target, args.products, args.stock)
    args.out.mkdir(parents=True, exist_ok=True)
    ramp_s = args.users / args.spawn_rate
    env = {
        **os.environ,
        "LOADTEST_STOREFRONT_KEY": settings.storefront_key,
        "LOADTEST_WAIT_S": str(args.wait),
        "LOADTEST_THINK": args.think,
    }
    warmup = None
    if args.warmup > 0:
        warm_out = args.out / "warmup"
        warm_out.mkdir(exist_ok=True)
        warm_products = stock_catalog(target, args.products, args.stock)
        print(f"warm-up: {args.users} buyers over {ramp_s:.0f} s, then {args.warmup:.0f} s")
        subprocess.run(
            locust_command(args, url, ramp_s + args.warmup, warm_out),
            env={**env, "LOADTEST_PRODUCTS": ",".join(warm_products)},
            timeout=ramp_s + args.warmup + 120,
            check=False,
        )
        warmup = read_stats(warm_out / "locust_stats.csv")
    print(f"{args.users} buyers over {ramp_s:.0f} s, then {args.duration:.0f} s of load")
    locust = subprocess.Popen(
        locust_command(args, url, ramp_s + args.duration, args.out),
        env={**env, "LOADTEST_PRODUCTS": ",".join(products)},
    )
    try:
        process = psutil.Process(locust.pid)
        # the steady window: from 5 s after the ramp to 5 s before the end
        time.sleep(ramp_s + 5)
        before, t0 = cpu_of(pids, process), time.time()
        time.sleep(max(1.0, args.duration - 10))
        after, t1 = cpu_of(pids, process), time.time()
        code = locust.wait(timeout=args.duration + 60)
    finally:
        if locust.poll() is None:
            locust.kill()
    window = LoadtestWindow(t0, t1, before, after)
    stats = read_stats(args.out / "locust_stats.csv")
    history = read_history(args.out / "locust_stats_history.csv")
    options = vars(args) | {"out": str(args.out), "product_ids": products}
    summary = summarise(stats, history, window, options, warmup)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_history(history, args.out / "loadtest.png")
    (args.out / "report.md").write_text(render_report(summary))
    print(render_report(summary))
    met = all(summary["goals"][name]["met"] for name in GOALS)
    # Locust exits 1 when any request failed: the report says how many
    return 0 if code in (0, 1) and met else 1


if __name__ == "__main__":
    sys.exit(main())
