"""Request rate limits in Redis: a fixed window (one second unless told) shared by all
workers, per key id, customer, client address or email (``name`` keeps them apart).

To keep Redis off the hot path, a worker takes tokens in small batches (INCRBY) and spends
them locally; the global count is exact per batch, so the limit can be overshot by at
most ``batch - 1`` requests per worker per second (batch = limit / 200, at most 50).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

# KEYS[1] window counter; ARGV[1] tokens taken; ARGV[2] window ttl ms. Returns the new count.
_TAKE_LUA = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


class RateLimiter(Protocol):
    async def allow(self, key_id: str) -> int:
        """0 when allowed, else the seconds to wait (for ``Retry-After``)."""


class RedisRateLimiter:
    def __init__(
        self,
        redis: Any,
        limit_per_second: int,
        namespace: str = "",
        *,
        window_s: int = 1,
        name: str = "rl",
    ) -> None:
        """``limit_per_second``: requests per window (of ``window_s`` seconds)."""
        self._redis = redis
        self._limit = limit_per_second
        self._window_s = window_s
        self._batch = max(1, min(50, limit_per_second // 200))
        self._prefix = f"{namespace}os:{name}:"
        self._refill: asyncio.Lock | None = None  # created on the worker's loop
        self._tokens: dict[str, tuple[int, int]] = {}  # key_id -> (window, tokens left)

    async def allow(self, key_id: str) -> int:
        if self._limit <= 0:
            return 0
        now = time.time()
        window = int(now // self._window_s)
        if self._take_local(key_id, window):
            return 0
        if self._refill is None:
            self._refill = asyncio.Lock()
        async with self._refill:  # one refill per worker at a time: no herd of batch takers
            if self._take_local(key_id, window):
                return 0
            key = f"{self._prefix}{key_id}:{window}"
            ttl_ms = 2000 * self._window_s
            count = int(await self._redis.eval(_TAKE_LUA, 1, key, self._batch, ttl_ms))
            granted = min(self._batch, self._limit - (count - self._batch))
            if granted <= 0:
                return max(1, int((window + 1) * self._window_s - now))
            self._tokens[key_id] = (window, granted - 1)
            return 0

    def _take_local(self, key_id: str, window: int) -> bool:
        # no lock: the worker's event loop runs one request at a time between awaits
        held_window, left = self._tokens.get(key_id, (window, 0))
        if held_window == window and left > 0:
            self._tokens[key_id] = (window, left - 1)
            return True
        return False
