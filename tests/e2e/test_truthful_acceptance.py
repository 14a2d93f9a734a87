"""Invariant 7 (truthful answers) when the broker dies under storefronts that retry.

Clients keep ordering while Kafka (every node of it) is SIGKILLed and restarted by the
supervisor; each one
retries its request with the same Idempotency-Key and body until it is answered, as real
storefronts do. Afterwards every key must have converged on one order id, PostgreSQL must
hold at most one order (not rejected) per key, no order may be committed on
``orders.committed`` that no client was told of (by a 202/201, or by a 503 naming it), and
no order row may exist that no client was told of unless it ended rejected or cancelled
holding no stock.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from tests.chaos import checks
from tests.chaos.faults import KILL, Fault, FaultInjector
from tests.chaos.harness import Load, drain, programs_running
from tests.chaos.stackctl import LocalStack
from tests.chaos.storefront import KeyLog, RetryingStorefront, RetryPolicy

RATE = 60.0  # orders offered per second, before, during and after the broker's outage
BEFORE_S = 3.0
AFTER_BACK_S = 5.0


async def orders_through_a_broker_kill(
    local: LocalStack, products: dict[str, float], prefix: str, engine: sa.Engine
) -> tuple[list[KeyLog], set[str]]:
    settings = local.settings
    policy = RetryPolicy(cap_s=8.0, give_up_s=180.0)
    async with RetryingStorefront(settings.ingress_url, settings.storefront_key, policy) as sf:
        load = Load(sf, RATE, products, prefix, multi_line_share=0.2, seed=7)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        injector = FaultInjector(local)
        try:
            await asyncio.sleep(BEFORE_S)
            # every node at once: a cluster loses intake as a single broker does
            kills = (injector.inject(Fault(b, KILL)) for b in local.brokers)
            for record in await asyncio.gather(*kills):
                assert record.back is not None, record.note
            await asyncio.sleep(AFTER_BACK_S)
        finally:
            injector.close()
            stop.set()
            await running
        accepted = {o for log in load.logs for o in log.accepted_ids}
        not_final = await drain(sf, engine, accepted, timeout_s=120.0)
    return load.logs, not_final


def test_a_broker_killed_under_retrying_clients_leaves_each_key_one_told_order(stack, pg, stocked):
    if stack.kind == "testcontainers":
        pytest.skip("signals the supervised local broker")
    local = LocalStack()
    programs_running(local)
    products = {stocked(f"truth{i}", 100_000): 1.0 for i in range(3)}
    prefix = f"truth-{uuid.uuid4().hex[:8]}-"

    logs, not_final = asyncio.run(orders_through_a_broker_kill(local, products, prefix, pg))
    orders = checks.stored_orders_at_rest(pg, prefix)

    found = [
        *checks.check_keys_and_answers(logs, not_final, orders),
        checks.check_committed_told(local.settings, logs, prefix),
        # at rest: the relay may still be sending what the sink shipped while it reconnected
        checks.check_reconcile(local.settings, list(products), timeout_s=60.0),
    ]
    checks.assert_all_ok(found, f"{len(logs)} orders, {len(orders)} rows")
