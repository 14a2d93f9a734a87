"""The running local stack as the chaos harness sees it: supervised programs, their
process trees, signals, and a probe per program that says it serves again.

Programs are what ``orderstream stack ctl status`` lists (supervisord starts each in its own
process group). A fault signals a program's whole process tree, found through ``/proc``
parent links rather than the process group, because PostgreSQL's backends each start a
session of their own and would escape a group signal.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orderstream.core.settings import REPO_ROOT, Settings, read_env_file
from orderstream.stack import broker, cache, database
from orderstream.stack.config import StackConfig

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
DEFAULT_INGRESS_PORT = 18080  # StackConfig's unshifted ingress port


@dataclass(frozen=True)
class ProgramState:
    name: str
    state: str
    pid: int


def children_by_parent() -> dict[int, list[int]]:
    """ppid -> pids, for every process /proc shows now."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ")"
        fields = stat.rsplit(")", 1)[1].split()
        found.setdefault(int(fields[1]), []).append(int(entry.name))
    return found


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, parents before children."""
    children = children_by_parent()
    order, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo.extend(sorted(children.get(pid, ())))
    return order


def send(pids: list[int], sig: int) -> list[int]:
    """Signal each pid; returns those that existed."""
    hit = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            hit.append(pid)
        except ProcessLookupError:
            pass
    return hit


class LocalStack:
    """One supervised stack, reached on 127.0.0.1: the repository's ``.local`` unless
    ``local`` (or ``ORDERSTREAM_STACK_DIR``) names another stack directory."""

    def __init__(self, root: Path = REPO_ROOT, local: Path | None = None) -> None:
        self.root = root
        if local is None:
            local = Path(os.environ.get("ORDERSTREAM_STACK_DIR") or root / ".local")
        env_file = local / "stack.env"
        if not env_file.exists():
            raise RuntimeError(f"{env_file} missing: run `make up` first")
        recorded = read_env_file(env_file)
        ingress = urlsplit(recorded["INGRESS_URL"])
        if ingress.hostname != LOCALHOST or ingress.port is None:
            raise RuntimeError(f"the chaos harness only drives a stack on {LOCALHOST}")
        # the ports the stack was started with, whatever this shell's offset says
        offset = ingress.port - DEFAULT_INGRESS_PORT
        self.environ = {
            **os.environ,
            "ORDERSTREAM_STACK_DIR": str(local),
            "ORDERSTREAM_STACK_PORT_OFFSET": str(offset),
        }
        self.cfg = StackConfig.from_env(self.environ)
        self.settings = Settings.from_env({**os.environ, **recorded})
        for url in (self.settings.kafka_bootstrap, self.settings.redis_url):
            if LOCALHOST not in url:
                raise RuntimeError(f"the chaos harness only drives a stack on {LOCALHOST}: {url}")

    @property
    def brokers(self) -> list[str]:
        """The Kafka programs: ``kafka``, or ``kafka-1`` ... in a cluster."""
        return broker.program_names(self.cfg)

    def broker_node(self, program: str) -> int:
        return self.brokers.index(program) + 1

    # ------------------------------------------------------------------ supervisor
    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        command = [str(self.cfg.venv_bin / "supervisorctl"), "-c", str(self.cfg.supervisor_conf)]
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        return result.stdout + result.stderr

    def status(self) -> dict[str, ProgramState]:
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            pid = 0
            if len(parts) >= 4 and parts[2] == "pid":
                pid = int(parts[3].rstrip(","))
            states[parts[0]] = ProgramState(parts[0], parts[1], pid)
        return states

    def pid(self, program: str) -> int:
        out = self.ctl("pid", program).strip()
        return int(out) if out.isdigit() else 0

    def running_pid(self, program: str) -> int:
        state = self.status().get(program)
        return state.pid if state is not None and state.state == "RUNNING" else 0

    # ------------------------------------------------------------------ probes
    def probe(self, program: str) -> Callable[[], bool]:
        """A check that ``program`` serves: a Kafka node answers metadata, PostgreSQL a
        query, Redis a PING, the ingress ``/healthz``; workers, sink and relay listen on
        their web / metrics port (they open it once set up)."""
        cfg, settings = self.cfg, self.settings
        if program in self.brokers:  # that node itself answers metadata
            address = f"{LOCALHOST}:{cfg.broker_port(self.broker_node(program))}"
            return _quiet(lambda: broker.ping(address))
        if program == "postgres":
            return _quiet(lambda: database.ping(settings.database_url))
        if program == "redis":
            return _quiet(lambda: cache.ping(settings.redis_url))
        if program == "ingress":
            return _quiet(lambda: _http_ok(f"{settings.ingress_url}/healthz"))
        if program.startswith("worker-"):
            port = cfg.worker_web_port + int(program.split("-", 1)[1])
            return _quiet(lambda: _listens(port))
        ports = {"sink": cfg.sink_metrics_port, "relay": cfg.relay_metrics_port}
        if program in ports:
            return _quiet(lambda: _listens(ports[program]))
        raise ValueError(f"no probe for {program}")

    def fault_pids(self, program: str, pid: int, *, pause: bool) -> list[int]:
        """The processes a fault of ``program`` signals: its whole tree; but a pause of the
        ingress stops gunicorn's workers and leaves the master running. The workers hold
        the listening socket's accepted connections and serve every request; the master only
        forks and watches them, so pausing it alone would change nothing a client sees
        (and it keeps its worker timeout running, which a pause of seconds stays under)."""
        tree = process_tree(pid)
        if pause and program == "ingress":
            return [p for p in tree if p != pid]
        return tree


def _quiet(check: Callable[[], object]) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            check()
            return True
        except Exception as exc:
            logger.debug("probe failed: %r", exc)
            return False

    return probe


def _listens(port: int) -> None:
    socket.create_connection((LOCALHOST, port), timeout=2).close()


def _http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=3) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status}")


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``check`` until true or ``timeout_s`` has passed; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def sigcont_all(pids: list[int]) -> None:
    """Resume processes a pause stopped (also on the way out of an interrupted run)."""
    send(pids, signal.SIGCONT)
