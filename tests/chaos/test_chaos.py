"""The short chaos run under pytest (``make test``): every program of the stack killed
once, the broker and the ingress paused, while retrying storefronts keep ordering; then
the invariants, checked black-box (tests.chaos.harness)."""

from __future__ import annotations

import logging

import pytest

from tests.chaos.harness import programs_running, run, short_config
from tests.chaos.stackctl import LocalStack

pytestmark = pytest.mark.e2e


def test_short_chaos_run_keeps_every_invariant(stack) -> None:
    if stack.kind == "testcontainers":
        pytest.skip(f"the chaos run signals supervised local programs, not a {stack.kind} stack")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    local = LocalStack()
    report = run(short_config(programs_running(local)))
    print(report.table())
    assert report.ok, report.table()
