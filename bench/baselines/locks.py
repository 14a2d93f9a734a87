"""A Redis ``SET NX`` lock per product, the lock-based way: bounded retries with random backoff."""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

logger = logging.getLogger(__name__)

# Release only a lock we still hold (compare-and-delete), as lock-based designs do.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockBusy(Exception):
    """A lock could not be acquired within the allowed attempts."""


class ProductLocks:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        ttl_ms: int,
        attempts: int,
        backoff_s: tuple[float, float],
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._release = client.register_script(RELEASE_LUA)

    def key(self, product_id: str) -> str:
        return f"{self._prefix}lock:{product_id}"

    def _acquire_one(self, key: str, token: str) -> bool:
        for attempt in range(self._attempts):
            if self._client.set(key, token, nx=True, px=self._ttl_ms):
                return True
            if attempt + 1 < self._attempts:
                time.sleep(random.uniform(*self._backoff_s))
        return False

    @contextmanager
    def hold(self, product_ids: Sequence[str]) -> Iterator[None]:
        """Lock every product (sorted, so two orders never wait on each other in a cycle)."""
        token = secrets.token_hex(10)
        held: list[str] = []
        try:
            for product_id in sorted(set(product_ids)):
                key = self.key(product_id)
                if not self._acquire_one(key, token):
                    raise LockBusy(product_id)
                held.append(key)
            yield
        finally:
            for key in reversed(held):
                try:
                    self._release(keys=[key], args=[token])
                except redis.RedisError:
                    logger.warning("could not release %s; it expires by its TTL", key)
