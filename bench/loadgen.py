"""The load generator: asyncio + aiohttp (uvloop when present) in one process.

``concurrency`` buyers each place an order, wait for its final answer (long-polling
``GET /v1/orders/{id}?wait=S`` while it is not terminal), then place the next one, until the
scenario's orders are placed or ``duration_s`` has passed. Answers are awaited until
``duration_s + drain_s``. Its own CPU time is reported so we can tell whether it was the
bottleneck (one core busy = suspect).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.figures import ACCEPTED_HTTP, TERMINAL, OrderOutcome
from bench.scenarios import Lines

logger = logging.getLogger(__name__)

Tick = Callable[[int], Any]


@dataclass(frozen=True)
class Target:
    """Where a system under test answers, and the keys it takes."""

    name: str
    url: str
    storefront_key: str
    admin_key: str


@dataclass(frozen=True)
class LoadConfig:
    concurrency: int = 128
    duration_s: float = 30.0
    drain_s: float = 20.0
    wait_s: float = 10.0
    connect_timeout_s: float = 10.0


def session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=3600)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, json_serialize=json.dumps)


def order_body(lines: Lines, customer: int) -> dict[str, Any]:
    return {
        "customer_id": f"bench-c{customer}",
        "items": [{"product_id": pid, "quantity": q} for pid, q in lines],
    }


async def place_one(
    http: aiohttp.ClientSession,
    target: Target,
    lines: Lines,
    customer: int,
    answer_by: float,
    wait_s: float,
) -> OrderOutcome:
    headers = {
        "Authorization": f"Bearer {target.storefront_key}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    outcome = OrderOutcome(lines=lines, t_sent=time.monotonic())
    try:
        async with http.post(
            f"{target.url}/v1/orders", json=order_body(lines, customer), headers=headers
        ) as r:
            outcome.http_status = r.status
            body = await r.json(content_type=None) if r.status == ACCEPTED_HTTP else None
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        outcome.error = type(exc).__name__
        return outcome
    if not isinstance(body, dict) or "order_id" not in body:
        return outcome
    outcome.order_id = str(body["order_id"])
    outcome.t_accepted = time.monotonic()
    await follow(http, target, outcome, body, answer_by, wait_s)
    return outcome


async def follow(
    http: aiohttp.ClientSession,
    target: Target,
    outcome: OrderOutcome,
    body: dict[str, Any],
    answer_by: float,
    wait_s: float,
) -> None:
    """Long-poll until the order has a terminal status or the answer deadline passes."""
    headers = {"Authorization": f"Bearer {target.storefront_key}"}
    while True:
        if body.get("status") in TERMINAL:
            outcome.final_status = str(body["status"])
            outcome.reason = body.get("reason")
            outcome.t_final = time.monotonic()
            return
        remaining = answer_by - time.monotonic()
        if remaining <= 0:
            return
        wait = max(0.1, min(wait_s, remaining))
        url = f"{target.url}/v1/orders/{outcome.order_id}?wait={wait:.1f}"
        try:
            async with http.get(url, headers=headers) as r:
                if r.status == 200:
                    body = await r.json(content_type=None)
                    continue
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            outcome.error = f"get:{type(exc).__name__}"
        await asyncio.sleep(0.05)  # 404 before the read model has it, or an error: retry shortly


async def run_orders(
    target: Target,
    orders: Iterator[Lines],
    max_orders: int,
    config: LoadConfig,
    tick: Tick = lambda n: None,
) -> list[OrderOutcome]:
    start = time.monotonic()
    load_end = start + config.duration_s
    answer_by = load_end + config.drain_s
    numbers = itertools.count()
    outcomes: list[OrderOutcome] = []

    async def buyer(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < load_end:
            n = next(numbers)
            if n >= max_orders:
                return
            outcome = await place_one(http, target, next(orders), n, answer_by, config.wait_s)
            outcomes.append(outcome)
            tick(1)

    async with session(
        config.concurrency + 8, config.wait_s + config.connect_timeout_s + 5
    ) as http:
        await asyncio.gather(*(buyer(http) for _ in range(config.concurrency)))
    return outcomes


async def hammer(
    url: str, duration_s: float, concurrency: int, tick: Tick = lambda n: None
) -> tuple[int, int, float]:
    """GET ``url`` as fast as possible; returns (ok, failed, seconds)."""
    ok = failed = 0
    start = time.monotonic()
    end = start + duration_s

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal ok, failed
        while time.monotonic() < end:
            try:
                async with http.get(url) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        failed += 1
            except (TimeoutError, aiohttp.ClientError):
                failed += 1
            if (ok + failed) % 200 == 0:
                tick(200)

    async with session(concurrency + 8, 30) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return ok, failed, time.monotonic() - start


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run(coro: Any) -> Any:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
