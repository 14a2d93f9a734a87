"""Find processes of one stack (after ``down``, none may remain)."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from orderstream.stack.config import StackConfig

logger = logging.getLogger(__name__)


def ours(cfg: StackConfig) -> dict[int, str]:
    """pid -> command line of every process started by this stack's supervisord (children carry
    ``SUPERVISOR_SERVER_URL`` pointing at our socket) and the daemon itself."""
    marker = f"SUPERVISOR_SERVER_URL=unix://{cfg.supervisor_sock}".encode()
    conf = str(cfg.supervisor_conf).encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") or (b"supervisord" in cmdline and conf in cmdline):
            found[int(proc.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def kill_leftovers(cfg: StackConfig, grace_s: float = 10) -> dict[int, str]:
    """TERM, then KILL, whatever of ours is still alive; returns what was found."""
    left = ours(cfg)
    for pid in left:
        logger.warning("left over, terminating %d: %s", pid, left[pid][:120])
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while ours(cfg) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in ours(cfg):
        _signal(pid, signal.SIGKILL)
    return left


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
