"""Live scaling: `ORDERSTREAM_WORKERS=N make up` starts or stops workers only.

Storefronts keep ordering (retrying with the same Idempotency-Key, as real ones do) while
the stack goes from its workers to one more and back. Every other program keeps its process
id, the added worker runs and is removed again, and afterwards every order is final, none
lost, one per key, and reconcile finds nothing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from tests.chaos import checks
from tests.chaos.harness import Load, drain, programs_running
from tests.chaos.stackctl import LocalStack
from tests.chaos.storefront import KeyLog, RetryingStorefront, RetryPolicy

RATE = 40.0  # orders offered per second while the stack is scaled


def scale_to(local: LocalStack, workers: int) -> None:
    """`make up` with another worker count, as an operator runs it."""
    env = {**os.environ, "ORDERSTREAM_WORKERS": str(workers)}
    command = [str(local.cfg.venv_bin / "orderstream"), "stack", "up"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)


def running_pids(local: LocalStack) -> dict[str, int]:
    return {name: state.pid for name, state in local.status().items() if state.state == "RUNNING"}


async def orders_while_scaling(
    local: LocalStack, products: dict[str, float], prefix: str, engine: sa.Engine, workers: int
) -> tuple[list[KeyLog], set[str], list[dict[str, int]]]:
    settings = local.settings
    policy = RetryPolicy(cap_s=8.0, give_up_s=180.0)
    seen: list[dict[str, int]] = [running_pids(local)]
    async with RetryingStorefront(settings.ingress_url, settings.storefront_key, policy) as sf:
        load = Load(sf, RATE, products, prefix, multi_line_share=0.2, seed=11)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        try:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(scale_to, local, workers + 1)
            seen.append(running_pids(local))
            await asyncio.sleep(5.0)
            await asyncio.to_thread(scale_to, local, workers)
            seen.append(running_pids(local))
            await asyncio.sleep(3.0)
        finally:
            stop.set()
            await running
        accepted = {o for log in load.logs for o in log.accepted_ids}
        not_final = await drain(sf, engine, accepted, timeout_s=120.0)
    return load.logs, not_final, seen


def test_scaling_the_workers_restarts_nothing_else_and_loses_no_order(stack, pg, stocked):
    if stack.kind == "testcontainers":
        pytest.skip("scales the supervised local stack")
    local = LocalStack()
    names = programs_running(local)
    workers = sum(name.startswith("worker-") for name in names)
    added = f"worker-{workers}"
    products = {stocked(f"scale{i}", 100_000): 1.0 for i in range(3)}
    prefix = f"scale-{uuid.uuid4().hex[:8]}-"

    try:
        logs, not_final, (before, scaled_up, scaled_down) = asyncio.run(
            orders_while_scaling(local, products, prefix, pg, workers)
        )
    finally:
        if added in local.status():  # leave the stack as it was found
            scale_to(local, workers)

    assert added not in before and added in scaled_up and added not in scaled_down
    assert {name: scaled_up.get(name) for name in before} == before
    assert scaled_down == before

    orders = checks.stored_orders_at_rest(pg, prefix)
    found = [
        *checks.check_keys_and_answers(logs, not_final, orders),
        checks.check_reconcile(local.settings, list(products), timeout_s=60.0),
    ]
    checks.assert_all_ok(found, f"{len(logs)} orders, {len(orders)} rows")
