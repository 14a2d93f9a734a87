"""Stocking a system's catalog through its admin API, and waiting until it can sell."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping

import aiohttp

from bench.exceptions import BenchError
from bench.loadgen import Target, Tick, session
from bench.scenarios import PRICE

logger = logging.getLogger(__name__)


async def put_products(
    target: Target, stock: Mapping[str, int], concurrency: int = 64, tick: Tick = lambda n: None
) -> None:
    """``PUT /v1/products/{id}`` (admin key) for every product; raise on the first failure."""
    headers = {"Authorization": f"Bearer {target.admin_key}"}
    items = iter(stock.items())

    async def putter(http: aiohttp.ClientSession) -> None:
        for pid, units in items:
            body = {"name": f"bench {pid}", "price": PRICE, "stock": units}
            for attempt in range(5):
                async with http.put(
                    f"{target.url}/v1/products/{pid}", json=body, headers=headers
                ) as r:
                    if r.status < 300:
                        break
                    if r.status not in (429, 503) or attempt == 4:
                        raise BenchError(f"{target.name}: PUT {pid} -> {r.status} {await r.text()}")
                await asyncio.sleep(0.2 * (attempt + 1))
            tick(1)

    async with session(concurrency + 4, 30) as http:
        await asyncio.gather(*(putter(http) for _ in range(concurrency)))


async def wait_available(
    target: Target, stock: Mapping[str, int], sample: int = 50, timeout_s: float = 90.0
) -> None:
    """Poll ``GET /v1/products/{id}`` on a sample until ``available`` equals the stock put."""
    chosen = random.Random(0).sample(sorted(stock), min(sample, len(stock)))
    pending = set(chosen)
    deadline = time.monotonic() + timeout_s
    async with session(16, 10) as http:
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                try:
                    async with http.get(f"{target.url}/v1/products/{pid}") as r:
                        body = await r.json(content_type=None) if r.status == 200 else None
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    body = None
                if isinstance(body, dict) and body.get("available") == stock[pid]:
                    pending.discard(pid)
            if pending:
                await asyncio.sleep(0.25)
    if pending:
        raise BenchError(
            f"{target.name}: {len(pending)} of {len(chosen)} sampled products not available in time"
        )
