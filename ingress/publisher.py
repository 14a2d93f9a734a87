"""Publishing to Kafka behind a small interface (unit tests use a fake).

``KafkaPublisher`` wraps an aiokafka producer on the worker's event loop: acks=all,
idempotent, a small linger so concurrent requests share batches, and the default
partitioner (murmur2 of the key bytes, the same as Java's, kafka-python's and aiokafka's:
``schemas.partitioning``, twice as fast as aiokafka's port), so a product's lines land in
the partition the Faust table expects. ``publish`` returns only
when every message is acknowledged, or raises ``PublishError`` telling how many were.

aiokafka rather than kafka-python: the ingress runs on asyncio (``ingress.app``), and
aiokafka builds record batches in C on the same loop, with no sender thread, for less than
half of kafka-python's CPU per message (docs/decisions/0004-aiokafka-in-the-ingress.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.partitioning import Murmur2Partitioner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes


class PublishError(Exception):
    def __init__(self, message: str, acked: int, total: int) -> None:
        super().__init__(message)
        self.acked = acked
        self.total = total


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        """Send every message and wait (at most ``timeout_s``) for all acknowledgements."""

    async def ready(self, timeout_s: float) -> bool:
        """True when the broker answers."""

    async def close(self) -> None: ...


class KafkaPublisher:
    """aiokafka producer, started on first use so the worker starts while Kafka is down."""

    def __init__(self, bootstrap: str, *, linger_ms: int = 2, **config: Any) -> None:
        self._bootstrap = bootstrap.split(",")
        self._config: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "request_timeout_ms": 10000,
            "client_id": "orderstream-ingress",
            "partitioner": Murmur2Partitioner(),
            **config,
        }
        self._producer: Any = None
        self._starting: asyncio.Lock | None = None
        self._failed_at = 0.0

    async def _get(self) -> Any:
        if self._producer is not None:
            return self._producer
        if time.monotonic() - self._failed_at < 1.0:
            raise PublishError("kafka unreachable (recent bootstrap failure)", 0, 0)
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(**self._config)
                try:
                    await producer.start()
                except Exception as exc:
                    self._failed_at = time.monotonic()
                    await producer.stop()
                    raise PublishError(f"kafka unreachable: {exc}", 0, 0) from exc
                self._producer = producer
        return self._producer

    async def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self._get()
                for m in messages:
                    futures.append(await producer.send(m.topic, value=m.value, key=m.key))
                await asyncio.gather(*futures)
        except (Exception, TimeoutError) as exc:
            acked = sum(1 for f in futures if f.done() and not f.cancelled() and not f.exception())
            logger.warning("kafka publish: %d of %d acked: %r", acked, len(messages), exc)
            raise PublishError(f"not acknowledged: {exc!r}", acked, len(messages)) from exc

    async def ready(self, timeout_s: float) -> bool:
        """A bootstrap broker accepts a TCP connection (cheap; no producer state involved)."""
        for server in self._bootstrap:
            host, _, port = server.rpartition(":")
            try:
                async with asyncio.timeout(timeout_s):
                    _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.close()
                return True
            except (OSError, TimeoutError) as exc:
                logger.info("kafka not ready at %s: %r", server, exc)
        return False

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
