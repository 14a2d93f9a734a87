"""The ingress' Redis client: redis-py with a pool that does not probe busy connections.

redis-py's ``ConnectionPool.get_connection`` polls every connection it hands out
(``can_read()``: a non-blocking read, a syscall and under gevent a caught timeout
exception) to find connections returned with unread data or closed by the server. That
probe cost ~50 µs of CPU per command here, about a fifth of the order path's Redis time.

``WarmConnectionPool`` probes only connections that sat idle for ``probe_after_s`` (1 s):
- unread data: redis-py disconnects a connection on any exception while sending or
  reading (``disconnect_on_error``, also for BaseException such as a gevent Timeout or
  GreenletExit), so a connection is never released with a reply pending;
- closed by the server (Redis restarted): an idle connection is probed and reconnected as
  before; a busy one fails its next command with ConnectionError, which is retried once
  on a new connection (redis-py's default for ``Redis.from_url`` is no retry at all).
  Every command the ingress sends is safe to repeat: reads, the rate limiter's INCRBY (a
  repeat only takes tokens early), the read model's forward-only status script, and the
  idempotency claim, which recognises its own claim value (see ``ingress.intake``).
TimeoutError is not retried (the command may have run; the caller answers 503).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry


class WarmConnectionPool(redis.ConnectionPool):
    probe_after_s = 1.0

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        self._checkpid()
        with self._lock:
            try:
                connection = self._available_connections.pop()
            except IndexError:
                connection = None
            else:
                self._in_use_connections.add(connection)
        now = time.monotonic()
        if connection is None:
            connection = super().get_connection(command_name, *keys, **options)
        elif now - getattr(connection, "_ingress_checked_out", 0.0) > self.probe_after_s:
            # idle (or never used): redis-py's own checks, probe included
            self.release(connection)
            connection = super().get_connection(command_name, *keys, **options)
        else:
            try:
                connection.connect()  # no-op when connected; reconnects after a disconnect
            except BaseException:
                self.release(connection)
                raise
        connection._ingress_checked_out = now
        return connection


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client for ``url`` with ``WarmConnectionPool`` and one retry on ConnectionError."""
    kwargs.setdefault("retry", Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    pool = WarmConnectionPool.from_url(url, **kwargs)
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client
