"""The load test's figures from Locust's CSV shapes: goals, the steady window, CPU per order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.loadtest.results import (
    LoadtestWindow,
    read_history,
    read_stats,
    render_report,
    summarise,
)

pytestmark = pytest.mark.unit

STATS_HEAD = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY_HEAD = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
PCTS = "10,11,12,13,14,15,16,{p99},18,19,20"
OPTIONS = {"users": 10, "think": "1,2", "spawn_rate": 10.0, "wait": 5.0, "products": 3,
           "stock": 100, "duration": 20.0}  # fmt: skip


def stats_csv(tmp_path: Path, requests: int, failures: int, average: float, p99: int) -> Path:
    path = tmp_path / "stats.csv"
    rows = [
        f"POST,POST /v1/orders,{requests},{failures},10,{average},1,900,50,100.0,0.0,"
        + PCTS.format(p99=p99),
        f",Aggregated,{requests},{failures},10,{average},1,900,50,100.0,0.0,"
        + PCTS.format(p99=p99),
    ]
    path.write_text("\n".join([STATS_HEAD, *rows]) + "\n")
    return path


def history_csv(tmp_path: Path, counts: dict[int, int]) -> Path:
    """POST rows with the given cumulative counts at each timestamp."""
    path = tmp_path / "history.csv"
    tail = "N/A," * 11
    rows = [
        f"{ts},10,POST,POST /v1/orders,5.0,0.0,{tail}{count},0,10,10.0,1,20,50"
        for ts, count in counts.items()
    ]
    path.write_text("\n".join([HISTORY_HEAD, *rows]) + "\n")
    return path


def test_orders_and_cpu_per_order_come_from_the_steady_window(tmp_path: Path) -> None:
    stats = read_stats(stats_csv(tmp_path, 10_000, 5, 120.0, 400))
    history = read_history(history_csv(tmp_path, {100: 50, 110: 1_000, 120: 2_000, 130: 3_000}))
    window = LoadtestWindow(
        t0=110.5, t1=130.2,
        before={"worker-0": {1: 10.0}, "locust": {9: 3.0}},
        after={"worker-0": {1: 12.0, 2: 1.0}, "locust": {9: 8.0}},  # pid 2 born in the window
    )  # fmt: skip

    summary = summarise(stats, history, window, OPTIONS)

    assert summary["window"]["orders"] == 2_000  # 3,000 at 130, 1,000 at 110
    assert summary["window"]["stack_cpu_ms_per_order"] == 1.5  # 3 s of the stack, not Locust's
    assert summary["window"]["cpu_s"] == {"locust": 5.0, "worker-0": 3.0}
    assert summary["overall"]["success_pct"] == pytest.approx(99.95)
    assert {name: g["met"] for name, g in summary["goals"].items()} == {
        "success": True, "average": True, "p99": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("failures", "average", "p99", "missed"),
    [(11, 120.0, 400, "success"), (0, 201.0, 400, "average"), (0, 120.0, 510, "p99")],
)
def test_each_goal_is_missed_on_its_own_figure(
    tmp_path: Path, failures: int, average: float, p99: int, missed: str
) -> None:
    stats = read_stats(stats_csv(tmp_path, 10_000, failures, average, p99))
    history = read_history(history_csv(tmp_path, {100: 0}))
    summary = summarise(stats, history, LoadtestWindow(100, 110, {}, {}), OPTIONS)

    assert [name for name, g in summary["goals"].items() if not g["met"]] == [missed]


def test_no_requests_meets_no_goal_and_the_report_still_renders(tmp_path: Path) -> None:
    stats = read_stats(stats_csv(tmp_path, 0, 0, 0.0, 0))
    history = read_history(history_csv(tmp_path, {100: 0}))
    summary = summarise(stats, history, LoadtestWindow(100, 110, {}, {}), OPTIONS)

    assert not summary["goals"]["success"]["met"]
    assert math.isnan(summary["window"]["stack_cpu_ms_per_order"])
    assert "| success >= 99.9 | success_pct | n/a | no |" in render_report(summary)


def test_a_warm_up_is_reported_apart_and_never_judged(tmp_path: Path) -> None:
    (tmp_path / "warmup").mkdir()
    measured = read_stats(stats_csv(tmp_path, 10_000, 0, 80.0, 300))
    warm = read_stats(stats_csv(tmp_path / "warmup", 5_000, 40, 900.0, 2_000))
    history = read_history(history_csv(tmp_path, {100: 0}))
    options = {**OPTIONS, "warmup": 30.0}
    summary = summarise(measured, history, LoadtestWindow(100, 110, {}, {}), options, warm)

    assert all(goal["met"] for goal in summary["goals"].values())
    assert summary["warmup"]["requests"] == 5_000 and summary["warmup"]["p99_ms"] == 2_000
    report = render_report(summary)
    assert "warm-up of the same buyers for 30 s" in report
    assert "5,000.0 requests, 99.2 % success, average 900.0 ms, p99 2,000.0 ms" in report


def test_a_run_without_a_warm_up_says_it_includes_the_cold_start(tmp_path: Path) -> None:
    stats = read_stats(stats_csv(tmp_path, 10_000, 0, 80.0, 300))
    history = read_history(history_csv(tmp_path, {100: 0}))
    options = {**OPTIONS, "warmup": 0.0}
    summary = summarise(stats, history, LoadtestWindow(100, 110, {}, {}), options)

    assert summary["warmup"] is None
    assert "No warm-up ran" in render_report(summary)
