"""``orderstream demo``: seed a small catalog and run a short flash sale against the stack.

Prints a progress bar and a closing summary: accepted, refused at the door by reason (the
sold-out gate), shipped, rejected by reason, throughput, and the two numbers that must be
zero (oversold, lost).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import click
from tqdm import tqdm

from orderstream.client import OrderstreamClient
from orderstream.core.settings import Settings
from schemas.orders import REFUSED_HTTP_STATUS, TERMINAL_STATUSES, refusal_reason


@dataclass
class SaleResult:
    accepted: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # order -> lines
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status -> count
    at_door: Counter[str] = field(default_factory=Counter)  # sold-out gate: reason -> count
    final: dict[str, dict] = field(default_factory=dict)  # order -> final body
    elapsed_s: float = 0.0


async def _buyer(
    http: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    customer: str,
    lines: list[tuple[str, int]],
    result: SaleResult,
    wait_s: float,
) -> None:
    body = {"customer_id": customer, "items": [{"product_id": p, "quantity": q} for p, q in lines]}
    posted = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    async with http.post(f"{base}/v1/orders", json=body, headers=posted) as response:
        if response.status == REFUSED_HTTP_STATUS:
            reason = refusal_reason(response.status, await response.json())
            if reason is not None:
                result.at_door[reason] += 1
                return
        if response.status != 202:
            result.refused[response.status] += 1
            return
        order_id = (await response.json())["order_id"]
    result.accepted[order_id] = lines
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        url = f"{base}/v1/orders/{order_id}?wait=10"
        async with http.get(url, headers=headers) as poll:
            final = await poll.json() if poll.status == 200 else {}
        if final.get("status") in TERMINAL_STATUSES:
            result.final[order_id] = final
            return


async def run_sale(
    settings: Settings,
    products: dict[str, int],
    buyers: int,
    concurrency: int,
    wait_s: float,
) -> SaleResult:
    """``buyers`` orders of 1-2 lines from ``concurrency`` closed-loop clients (aiohttp:
    an httpx client spent a whole core here before the pipeline did)."""
    result = SaleResult()
    headers = {"Authorization": f"Bearer {settings.storefront_key}"}
    rng = random.Random(7)
    product_ids = list(products)
    orders = [
        (f"demo-{i}", [(p, 1) for p in rng.sample(product_ids, k=rng.choice([1, 1, 1, 2]))])
        for i in range(buyers)
    ]
    queue: asyncio.Queue[tuple[str, list[tuple[str, int]]]] = asyncio.Queue()
    for order in orders:
        queue.put_nowait(order)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=wait_s + 15)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        with tqdm(total=buyers, desc="flash sale", unit="order") as bar:

            async def client() -> None:
                while not queue.empty():
                    customer, lines = queue.get_nowait()
                    await _buyer(
                        http, settings.ingress_url, headers, customer, lines, result, wait_s
                    )
                    bar.update(1)

            started = time.monotonic()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            result.elapsed_s = time.monotonic() - started
    return result


def summarize(products: dict[str, int], result: SaleResult) -> dict[str, object]:
    statuses = Counter(body["status"] for body in result.final.values())
    reasons = Counter(
        body.get("reason") for body in result.final.values() if body["status"] == "rejected"
    )
    shipped_units: Counter[str] = Counter()
    for order_id, body in result.final.items():
        if body["status"] == "shipped":
            for product_id, quantity in result.accepted[order_id]:
                shipped_units[product_id] += quantity
    oversold = sum(max(0, shipped_units[p] - stock) for p, stock in products.items())
    answered = len(result.final) + sum(result.at_door.values())
    return {
        "accepted": len(result.accepted),
        "refused_at_door": dict(result.at_door),
        "refused_by_status": dict(result.refused),
        "shipped": statuses.get("shipped", 0),
        "rejected": dict(reasons),
        "cancelled": statuses.get("cancelled", 0),
        "orders_per_s": round(answered / result.elapsed_s, 1) if result.elapsed_s else 0,
        "oversold": oversold,
        "lost": len(result.accepted) - len(result.final),
    }


@click.command()
@click.option("--products", "product_count", default=5, show_default=True)
@click.option("--stock", default=100, show_default=True, help="units per product")
@click.option("--buyers", default=2000, show_default=True)
@click.option("--concurrency", default=100, show_default=True)
@click.option("--wait", "wait_s", default=60.0, show_default=True, help="max seconds per order")
def demo(product_count: int, stock: int, buyers: int, concurrency: int, wait_s: float) -> None:
    """Seed a catalog and run a short flash sale against the running stack."""
    settings = Settings.from_env()
    run = uuid.uuid4().hex[:6]
    products = {f"DEMO-{run}-{i}": stock for i in range(product_count)}
    with OrderstreamClient(
        settings.ingress_url, settings.storefront_key, settings.admin_key
    ) as api:
        for i, product_id in enumerate(products):
            api.put_product(product_id, name=f"Flash item {i}", price=f"{9 + i}.99", stock=stock)
        for product_id in products:
            if api.wait_product(product_id, lambda p: p["available"] == stock) is None:
                raise click.ClickException(f"product {product_id} never became available")
    result = asyncio.run(run_sale(settings, products, buyers, concurrency, wait_s))
    summary = summarize(products, result)
    click.echo("")
    for key, value in summary.items():
        click.echo(f"{key:>18}: {value}")
    page = f"{settings.ingress_url}/shop#products={','.join(products)}"
    click.echo(f"\nwatch it in a browser: {page}&key=<STOREFRONT_KEY of .local/stack.env>")
    if summary["oversold"] or summary["lost"]:
        raise SystemExit(1)
