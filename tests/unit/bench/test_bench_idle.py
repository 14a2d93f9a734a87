"""The idle benchmark's arithmetic: per cent of one core per program between two snapshots."""

from __future__ import annotations

import pytest

from bench.idle import idle_cost, render


def test_each_program_counts_its_processes_and_a_process_born_in_the_window_counts_fully() -> None:
    before = {"kafka": {10: 100.0}, "ingress": {20: 5.0, 21: 3.0}}
    after = {"kafka": {10: 103.0}, "ingress": {20: 5.3, 21: 3.3, 22: 0.4}}
    cost = idle_cost(before, after, seconds=30.0)
    assert cost.percent == pytest.approx({"kafka": 10.0, "ingress": 100.0 * 1.0 / 30})
    assert cost.total == pytest.approx(100.0 * 4.0 / 30)


def test_the_report_lists_programs_costliest_first_and_the_total() -> None:
    cost = idle_cost({"a": {1: 0.0}, "b": {2: 0.0}}, {"a": {1: 0.3}, "b": {2: 0.6}}, 10.0)
    lines = render(cost).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["b", "a", "total"]
    assert lines[-1].split()[1] == "9.00"
