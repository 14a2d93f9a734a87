"""Writes the Redis read model from the stream processors, off the decision path.

Agents only ``enqueue`` (a dict update, no I/O); ``run`` flushes what is pending in one
pipeline every ``interval`` seconds, many products or statuses per script call
(``orderstream.readmodel.batch_calls``). Product availability is the absolute value from
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
from itertools import chain
from typing import Any

import redis.asyncio as aioredis

from orderstream.readmodel import (
    SET_PRODUCTS_LUA,
    SET_STATUSES_LUA,
    Keys,
    batch_calls,
    product_fields,
    status_calls,
)
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
        self._script = client.register_script(SET_STATUSES_LUA) if client is not None else None
        self._product_script = (
            client.register_script(SET_PRODUCTS_LUA) if client is not None else None
        )

    def enqueue_product(self, product: ProductState) -> None:
        version = (product.applied_commands, product.applied_requests)
        self.products[product.product_id] = (
            version,
            product_fields(
                name=product.name,
                price=str(product.price),
                available=product.available,
                active=product.active,
                limit_per_customer=product.limit_per_customer,
            ),
        )

    def enqueue_applied(self, product_id: str, command_id: str) -> None:
        """An admin command is applied: its id leaves the product's pending set (the sold-out
        gate's, ``ingress.admission``) in the write that shows the product after it."""
        self.applied.setdefault(product_id, set()).add(command_id)

    def enqueue_status(self, order_id: str, status: str, fields: dict[str, Any]) -> None:
        if self.client is None:
            return
        self.statuses[f"{order_id}\x00{status}"] = (status, fields)
        if len(self.statuses) > MAX_PENDING_STATUSES:
            self.statuses.popitem(last=False)
            logger.error("read model backlog full; oldest status update dropped")

    async def flush(self) -> int:
        """Write what is pending; on failure keep it for the next try. Returns writes sent."""
        if self.client is None or self._script is None or self._product_script is None:
            self.products.clear()
            self.applied.clear()
            return 0
        products, self.products = self.products, {}
        statuses, self.statuses = self.statuses, OrderedDict()
        applied, self.applied = self.applied, {}
        if not products and not statuses and not applied:
            return 0
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                if products:
                    pipe.zadd(self.keys.product_ids(), dict.fromkeys(products, 0))
                calls = (
                    ((self.keys.product(product_id),), [*version, *chain(*fields.items())])
                    for product_id, (version, fields) in products.items()
                )
                for redis_keys, args in batch_calls(calls):
                    await self._product_script(keys=redis_keys, args=args, client=pipe)
                # after the products: the gate trusts their availability once this is gone
                for product_id, command_ids in applied.items():
                    pipe.srem(self.keys.product_pending(product_id), *command_ids)
                updates = (
                    (key.partition("\x00")[0], status, fields)
                    for key, (status, fields) in statuses.items()
                )
                for redis_keys, args in status_calls(self.keys, updates):
                    await self._script(keys=redis_keys, args=args, client=pipe)
                await pipe.execute()
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
        backoff = self.interval
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.flush()
                backoff = self.interval
            except Exception as exc:  # Redis down: decisions go on, retry later
                backoff = min(5.0, max(backoff * 2, 0.2))
                logger.warning("read model write failed (%s); retry in %.1fs", exc, backoff)

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.flush()
            except Exception as exc:
                logger.warning("final read model flush failed: %s", exc)
            await self.client.aclose()
