"""Writes the Redis read model from the stream processors, off the decision path.

Agents only ``enqueue`` (a dict update, no I/O); ``run`` flushes what is pending in one
pipeline, at most once every ``interval`` seconds, and sleeps while nothing is pending (a
first write after a quiet spell goes at once); many products or statuses per script call
(``orderstream.core.readmodel.ReadModelWrites``). Product availability is the absolute value from
the table, written only when newer than what Redis holds (``SET_PRODUCT_LUA``: versioned by
the source offsets applied to the product, so a late write of a worker that lost the
partition cannot put an old availability back); order statuses go through
``SET_STATUS_LUA`` (forward-only, so replays are harmless). When Redis is down, writes
stay pending and are retried with backoff: Redis is not the truth and never stops a
decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis

from orderstream.core.readmodel import Keys, ReadModelWrites, Sender, product_fields
from streams.records import ProductState

logger = logging.getLogger(__name__)
MAX_PENDING_STATUSES = 200_000


class ReadModelWriter:
    def __init__(self, client: aioredis.Redis | None, keys: Keys, interval: float = 0.05) -> None:
        self.client = client
        self.keys = keys
        self.interval = interval
        self.products: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}
        self.statuses: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self.applied: dict[str, set[str]] = {}  # product -> admin command ids applied
        self._sender = Sender(client) if client is not None else None
        self._pending = asyncio.Event()  # set by every enqueue, and after a failed flush

    def enqueue_product(self, product: ProductState) -> None:
        version = (product.applied_commands, product.applied_requests)
        self.products[product.product_id] = (
            version,
            product_fields(
                name=product.name,
                price=str(product.price),
                description=product.description,
                available=product.available,
                active=product.active,
                limit_per_customer=product.limit_per_customer,
            ),
        )
        self._pending.set()

    def enqueue_applied(self, product_id: str, command_id: str) -> None:
        """An admin command is applied: its id leaves the product's pending set (the sold-out
        gate's, ``ingress.admission``) in the write that shows the product after it."""
        self.applied.setdefault(product_id, set()).add(command_id)
        self._pending.set()

    def enqueue_status(self, order_id: str, status: str, fields: dict[str, Any]) -> None:
        if self.client is None:
            return
        self.statuses[f"{order_id}\x00{status}"] = (status, fields)
        if len(self.statuses) > MAX_PENDING_STATUSES:
            self.statuses.popitem(last=False)
            logger.error("read model backlog full; oldest status update dropped")
        self._pending.set()

    async def flush(self) -> int:
        """Write what is pending; on failure keep it for the next try. Returns writes sent."""
        if self._sender is None:
            self.products.clear()
            self.applied.clear()
            return 0
        products, self.products = self.products, {}
        statuses, self.statuses = self.statuses, OrderedDict()
        applied, self.applied = self.applied, {}
        writes = ReadModelWrites(self.keys)
        for product_id, (version, fields) in products.items():
            writes.product(product_id, version, fields)
        for product_id, command_ids in applied.items():
            writes.command_applied(product_id, command_ids)
        for key, (status, fields) in statuses.items():
            writes.status(key.partition("\x00")[0], status, fields)
        if not writes:
            return 0
        try:
            await self._sender.send_async(writes)
        except Exception:
            # put back what was not written; newer product values win
            self.products = products | self.products
            for product_id, command_ids in applied.items():
                self.applied.setdefault(product_id, set()).update(command_ids)
            statuses.update(self.statuses)
            self.statuses = statuses
            raise
        return len(products) + len(statuses) + len(applied)

    async def run(self) -> None:
        """Flush whenever something is pending, at most once per ``interval`` (or per backoff
        after a failure). A quiet worker never wakes for this: no enqueue, no flush."""
        loop = asyncio.get_running_loop()
        backoff = self.interval
        flushed_at = -backoff
        while True:
            await self._pending.wait()
            delay = flushed_at + backoff - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._pending.clear()  # enqueues from here on wake the next round
            try:
                await self.flush()
                backoff = self.interval
            except Exception as exc:  # Redis down: decisions go on, retry later
                backoff = min(5.0, max(backoff * 2, 0.2))
                logger.warning("read model write failed (%s); retry in %.1fs", exc, backoff)
                self._pending.set()  # what failed is pending again
            flushed_at = loop.time()

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.flush()
            except Exception as exc:
                logger.warning("final read model flush failed: %s", exc)
            await self.client.aclose()
