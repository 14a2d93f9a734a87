"""The ingress' Redis client: redis.asyncio with one retry on ConnectionError.

redis-py's default for ``from_url`` is no retry at all. A connection closed by the server
(Redis restarted) fails its next command with ConnectionError, which is retried once on a
new connection. Every command the ingress sends is safe to repeat: reads, the rate
limiter's INCRBY (a repeat only takes tokens early), the read model's forward-only status
script, and the idempotency claim, which recognises its own claim value (see
``ingress.intake``). TimeoutError is not retried (the command may have run; the caller
answers 503).
"""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from orderstream.core.redispack import connection_options


def connect(url: str, *, max_connections: int = 64, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` with one retry on ConnectionError.

    Its pool blocks (up to 5 s) when all ``max_connections`` are out, instead of failing
    the command as redis.asyncio's default pool does. The hot commands share pipelines
    (``ingress.redisbatch``), so a worker needs few connections.
    """
    kwargs.setdefault("retry", Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    kwargs = {**connection_options(url), **kwargs}  # commands packed by hiredis
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, **kwargs
    )
    return aioredis.Redis.from_pool(pool)
