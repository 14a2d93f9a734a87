"""The e2e tests' hand on the local stack's supervisor: stop and start one program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ctl(*args: str) -> str:
    """``orderstream stack ctl ARGS`` (supervisorctl on the local stack); its output."""
    result = subprocess.run(
        [sys.executable, "-m", "orderstream.cli", "stack", "ctl", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr
