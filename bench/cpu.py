"""CPU seconds per component, from psutil, between two snapshots.

Components are found by what they listen on (PostgreSQL, Redis, Kafka, the ingress: every
process holding the listening socket, and their children) or by command line (Faust
workers, sink/relay), and the baselines by the pids the harness started. Other engineers'
processes on the same PostgreSQL/Redis are counted too: on a shared machine these figures
are noisy."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

Snapshot = dict[int, tuple[str, float]]
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def cpu_time(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def listener_pids(port: int) -> list[int]:
    """Every process holding a listening TCP socket on ``port`` (Linux ``/proc``).

    A pre-fork server's master and all its workers hold the one listening socket, but
    psutil's ``net_connections`` names a single holder per socket, sometimes a worker (whose
    children are none): the ingress was counted as one gunicorn worker of several. So the
    socket's inode is looked up in ``/proc/net/tcp*`` and every process's fds are searched.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    pids = []
    for entry in os.scandir("/proc") if inodes else ():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
            if any(_readlink(fd.path) in inodes for fd in fds):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return sorted(pids)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def with_children(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def command_line_component(proc: psutil.Process) -> str | None:
    """Faust workers and the sink/relay, by command line (``orderstream worker|sink|relay``)."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return None
    names = [a.rsplit("/", 1)[-1] for a in argv]
    if "pytest" in " ".join(argv):
        return None
    if "faust" in names or ("orderstream" in names and "worker" in argv):
        return "faust_workers"
    if "orderstream" in names and ("sink" in argv or "relay" in argv):
        return "sink"
    return None


@dataclass
class ComponentSampler:
    """Which processes belong to which component; ``snapshot()`` reads their CPU time now."""

    ports: Mapping[str, int]  # component -> listening port (its listener and children count)
    pids: Mapping[str, Iterable[int]] = field(default_factory=dict)  # component -> root pids
    scan_command_lines: bool = False
    own_process_as: str | None = "loadgen"

    def processes(self) -> list[tuple[str, psutil.Process]]:
        found: list[tuple[str, psutil.Process]] = []
        for component, port in self.ports.items():
            for pid in listener_pids(port):
                found += [(component, p) for p in with_children(pid)]
        for component, roots in self.pids.items():
            for pid in roots:
                found += [(component, p) for p in with_children(pid)]
        if self.scan_command_lines:
            seen = {p.pid for _, p in found}
            for proc in psutil.process_iter():
                if proc.pid not in seen:
                    named = command_line_component(proc)
                    if named is not None:
                        found.append((named, proc))
        if self.own_process_as:
            found.append((self.own_process_as, psutil.Process(os.getpid())))
        return found

    def snapshot(self, own_first: bool = False) -> Snapshot:
        """CPU seconds so far per process. ``own_first``: read this process's CPU before finding
        the others (for the snapshot that ends a measurement), so that finding them (psutil over
        /proc, ~0.1 s of CPU) is not counted as load generation; the first snapshot reads it last.
        """
        snap: Snapshot = {}
        if own_first and self.own_process_as:
            me = psutil.Process(os.getpid())
            snap[me.pid] = (self.own_process_as, cpu_time(me))
        for component, proc in self.processes():
            if proc.pid in snap:  # the first component to claim a process keeps it
                continue
            try:
                snap[proc.pid] = (component, cpu_time(proc))
            except psutil.Error:
                continue
        return snap


def cpu_seconds(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per component between two snapshots; a process born in between counts fully."""
    totals: dict[str, float] = {}
    for pid, (component, end) in after.items():
        start = before.get(pid, (component, 0.0))[1]
        totals[component] = totals.get(component, 0.0) + max(0.0, end - start)
    return totals
