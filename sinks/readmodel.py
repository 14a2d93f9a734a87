"""Read-model writes after a committed batch. Redis down never stops the sink.

Updates are forward-only (``orderstream.core.readmodel.ReadModelWrites``: many per call), so
writing one again is harmless. Updates that fail are kept (bounded) and retried after the
next batch; PostgreSQL stays the truth and the ingress falls back to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis

from orderstream.core.readmodel import Keys, ReadModelWrites, Sender
from sinks.projection import StatusUpdate

logger = logging.getLogger(__name__)

MAX_PENDING = 100_000
RETRY_AFTER_S = 2.0


class ReadModelWriter:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._sender = Sender(client)
        self._pending: dict[str, StatusUpdate] = {}
        self._retry_at = 0.0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self, updates: Iterable[StatusUpdate]) -> None:
        for update in updates:
            self._pending[update.order_id] = update
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            for order_id in list(self._pending)[:dropped]:
                del self._pending[order_id]
            logger.warning("read model: dropped %d old updates (PostgreSQL has them)", dropped)
        if not self._pending or time.monotonic() < self._retry_at:
            return
        batch = list(self._pending.values())
        writes = ReadModelWrites(self._keys)
        for update in batch:
            writes.status(update.order_id, update.status, update.fields)
        try:
            self._sender.send(writes)
        except redis.RedisError as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            logger.warning(
                "read model: Redis unavailable (%s); %d updates pending", exc, len(batch)
            )
            return
        for update in batch:
            if self._pending.get(update.order_id) is update:
                del self._pending[update.order_id]
