"""The CPU accounting: which process's CPU time the closing snapshot reads first."""

from __future__ import annotations

import os

import psutil
import pytest

from bench import cpu


def test_the_closing_cpu_snapshot_reads_the_load_generator_before_scanning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    class Sampler(cpu.ComponentSampler):
        def processes(self) -> list[tuple[str, psutil.Process]]:
            events.append("scan")
            return super().processes()

    def cpu_time(proc: psutil.Process) -> float:
        events.append("read own" if proc.pid == os.getpid() else "read other")
        return 1.0

    monkeypatch.setattr(cpu, "cpu_time", cpu_time)
    sampler = Sampler(ports={})
    closing = sampler.snapshot(own_first=True)
    assert events == ["read own", "scan"] and closing == {os.getpid(): ("loadgen", 1.0)}
    events.clear()
    sampler.snapshot()
    assert events == ["scan", "read own"]
