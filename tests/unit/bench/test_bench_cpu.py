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


def test_every_process_holding_the_listening_socket_counts() -> None:
    # A pre-fork server: several processes hold one listening socket. Here two siblings
    # (no parent among the listeners), so finding only the first listener and its
    # children would miss the other.
    import socket
    import subprocess
    import sys

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    sleepers = [
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=[listener.fileno()]
        )
        for _ in range(2)
    ]
    listener.close()
    try:
        assert cpu.listener_pids(port) == sorted(p.pid for p in sleepers)
        sampler = cpu.ComponentSampler(ports={"ingress": port}, own_process_as=None)
        assert {(c, p.pid) for c, p in sampler.processes()} == {
            ("ingress", p.pid) for p in sleepers
        }
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
