"""Per-key request rate limit in Redis: a fixed one-second window shared by all workers."""

from __future__ import annotations

import time
from typing import Any, Protocol

# KEYS[1] window counter; ARGV[1] window ttl ms. Returns the count in this window.
_INCR_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RateLimiter(Protocol):
    def allow(self, key_id: str) -> int:
        """0 when allowed, else the seconds to wait (for ``Retry-After``)."""


class RedisRateLimiter:
    def __init__(self, redis: Any, limit_per_second: int, namespace: str = "") -> None:
        self._limit = limit_per_second
        self._prefix = f"{namespace}os:rl:"
        self._incr = redis.register_script(_INCR_LUA)

    def allow(self, key_id: str) -> int:
        if self._limit <= 0:
            return 0
        window = int(time.time())
        count = int(self._incr(keys=[f"{self._prefix}{key_id}:{window}"], args=[2000]))
        return 0 if count <= self._limit else 1
