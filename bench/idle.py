"""``python -m bench.idle`` (``make bench-idle``): what a quiet stack costs, per program.

Reads the running local stack's programs from its supervisord, lets it settle, then reads
each program's CPU time (its process and children, from ``/proc`` through psutil) at the
start and the end of a window with no traffic. Prints the per cent of one core each program
used, and the total; ``--json`` also writes the figures. Never run from tests: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.cpu import cpu_time, with_children
from orderstream.stack import supervisor
from orderstream.stack.config import StackConfig


@dataclass(frozen=True)
class IdleCost:
    """CPU per program over one window: per cent of one core."""

    seconds: float
    percent: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.percent.values())


def program_pids(cfg: StackConfig) -> dict[str, int]:
    """Every RUNNING program of the stack's supervisord and its pid."""
    pids: dict[str, int] = {}
    for line in supervisor.ctl(cfg, "status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


def snapshot(pids: Mapping[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process of each program, by pid."""
    taken: dict[str, dict[int, float]] = {}
    for program, pid in pids.items():
        times: dict[int, float] = {}
        for proc in with_children(pid):
            try:
                times[proc.pid] = cpu_time(proc)
            except psutil.Error:
                continue
        taken[program] = times
    return taken


def idle_cost(
    before: Mapping[str, Mapping[int, float]],
    after: Mapping[str, Mapping[int, float]],
    seconds: float,
) -> IdleCost:
    """Per cent of one core per program between two snapshots; a process born in between
    counts fully, one that died in between is lost (a restart shows as a new pid)."""
    percent = {}
    for program, times in after.items():
        start = before.get(program, {})
        used = sum(max(0.0, end - start.get(pid, 0.0)) for pid, end in times.items())
        percent[program] = 100.0 * used / seconds
    return IdleCost(seconds, percent)


def measure(cfg: StackConfig, seconds: float, settle_s: float) -> IdleCost:
    pids = program_pids(cfg)
    if not pids:
        raise SystemExit(f"no running stack under {cfg.supervisor_conf}: run `make up` first")
    time.sleep(settle_s)
    before, started = snapshot(pids), time.monotonic()
    time.sleep(seconds)
    after = snapshot(pids)
    return idle_cost(before, after, time.monotonic() - started)


def render(cost: IdleCost) -> str:
    rows = sorted(cost.percent.items(), key=lambda kv: -kv[1])
    width = max(len(name) for name, _ in rows)
    lines = [f"idle CPU over {cost.seconds:.0f} s, per cent of one core"]
    lines += [f"  {name:<{width}}  {pct:6.2f}" for name, pct in rows]
    lines.append(f"  {'total':<{width}}  {cost.total:6.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="window length (30)")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds to wait before the window (10)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env(os.environ)
    cost = measure(cfg, args.seconds, args.settle)
    print(render(cost))
    if args.json:
        figures = {"seconds": cost.seconds, "percent": cost.percent, "total": cost.total}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
