"""Fault injection while the load runs: SIGKILL or SIGSTOP/SIGCONT of one program at a time.

A kill signals the program's whole process tree with SIGKILL and waits until supervisord
has started it again (a new pid, RUNNING) and its probe answers. A pause stops the tree
(for the ingress, gunicorn's workers: ``LocalStack.fault_pids`` says why) for
``pause_s`` seconds, resumes it, and waits for the probe. Each fault is recorded with when
it began and when the program was back; the checks turn that into fault windows.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

from tests.chaos.stackctl import LocalStack, send, sigcont_all, wait_for

KILL = "kill"
PAUSE = "pause"


@dataclass(frozen=True)
class Fault:
    program: str
    kind: str  # KILL or PAUSE
    pause_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind} {self.program}" + (f" {self.pause_s:g}s" if self.kind == PAUSE else "")


@dataclass
class FaultRecord:
    """What happened: ``started``/``back`` are ``time.monotonic()`` values (``back`` None:
    the program did not come back within the timeout)."""

    fault: Fault
    started: float
    back: float | None = None
    pids: list[int] = field(default_factory=list)
    new_pid: int = 0
    note: str = ""


class FaultInjector:
    """Injects faults into a ``LocalStack``; every stopped process is resumed on ``close``."""

    def __init__(self, stack: LocalStack, back_timeout_s: float = 120.0) -> None:
        self.stack = stack
        self.back_timeout_s = back_timeout_s
        self._stopped: list[int] = []

    async def inject(self, fault: Fault) -> FaultRecord:
        if fault.kind == KILL:
            return await self._kill(fault)
        if fault.kind == PAUSE:
            return await self._pause(fault)
        raise ValueError(f"unknown fault {fault}")

    async def _kill(self, fault: Fault) -> FaultRecord:
        program = fault.program
        old = await asyncio.to_thread(self.stack.running_pid, program)
        if not old:
            raise RuntimeError(f"{program} is not RUNNING: {self.stack.ctl('status', program)}")
        pids = await asyncio.to_thread(self.stack.fault_pids, program, old, pause=False)
        record = FaultRecord(fault, time.monotonic())
        record.pids = send(pids, signal.SIGKILL)
        probe = self.stack.probe(program)

        def restarted() -> bool:
            pid = self.stack.running_pid(program)
            if pid and pid != old and probe():
                record.new_pid = pid
                return True
            return False

        if await asyncio.to_thread(wait_for, restarted, self.back_timeout_s, 0.25):
            record.back = time.monotonic()
        else:
            record.note = f"not back after {self.back_timeout_s:.0f}s; `ctl start` tried"
            await asyncio.to_thread(self.stack.ctl, "start", program)
        return record

    async def _pause(self, fault: Fault) -> FaultRecord:
        program = fault.program
        pid = await asyncio.to_thread(self.stack.running_pid, program)
        if not pid:
            raise RuntimeError(f"{program} is not RUNNING: {self.stack.ctl('status', program)}")
        pids = await asyncio.to_thread(self.stack.fault_pids, program, pid, pause=True)
        record = FaultRecord(fault, time.monotonic())
        self._stopped = send(pids, signal.SIGSTOP)
        record.pids = list(self._stopped)
        try:
            await asyncio.sleep(fault.pause_s)
        finally:
            sigcont_all(self._stopped)
            self._stopped = []
        resumed = time.monotonic()
        probe = self.stack.probe(program)
        if await asyncio.to_thread(wait_for, probe, self.back_timeout_s, 0.25):
            record.back = max(resumed, time.monotonic())
        else:
            record.note = f"no answer {self.back_timeout_s:.0f}s after SIGCONT"
        record.new_pid = pid
        return record

    def close(self) -> None:
        """Resume anything still stopped (an interrupted pause)."""
        sigcont_all(self._stopped)
        self._stopped = []
