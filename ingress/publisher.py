"""Publishing to Kafka behind a small interface (unit tests use a fake).

``KafkaPublisher`` wraps a kafka-python producer: acks=all, idempotent, a small linger so
concurrent requests share batches, and the default partitioner (murmur2 of the key bytes,
the same as aiokafka's and Java's), so a product's lines land in the partition the Faust
table expects. ``publish`` returns only when every message is acknowledged, or raises
``PublishError`` telling how many were acknowledged.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        """Send every message and wait (at most ``timeout_s``) for all acknowledgements."""

    def ready(self, timeout_s: float) -> bool:
        """True when the broker answers."""

    def close(self) -> None: ...


class KafkaPublisher:
    """kafka-python producer, created lazily so the worker starts while Kafka is down."""

    def __init__(self, bootstrap: str, *, linger_ms: int = 2, **config: Any) -> None:
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "allow_auto_create_topics": False,
            "metrics_enabled": False,
            "max_block_ms": 5000,
            "request_timeout_ms": 10000,
            "delivery_timeout_ms": 30000,
            "bootstrap_timeout_ms": 5000,
            "client_id": "orderstream-ingress",
            **config,
        }
        self._producer: Any = None
        self._lock = threading.Lock()
        self._failed_at = 0.0

    def _get(self) -> Any:
        if self._producer is None:
            if time.monotonic() - self._failed_at < 1.0:
                raise PublishError("kafka unreachable (recent bootstrap failure)", 0, 0)
            with self._lock:
                if self._producer is None:
                    from kafka import KafkaProducer

                    try:
                        self._producer = KafkaProducer(**self._config)
                    except Exception:
                        self._failed_at = time.monotonic()
                        raise
        return self._producer

    def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        futures = []
        try:
            producer = self._get()
            for m in messages:
                futures.append(producer.send(m.topic, key=m.key, value=m.value))
        except Exception as exc:
            logger.warning("kafka send failed: %s", exc)
            acked = _count_acked(futures, deadline)
            raise PublishError(f"send failed: {exc}", acked, len(messages)) from exc
        failed: Exception | None = None
        acked = 0
        for future in futures:
            try:
                future.get(timeout=max(0.001, deadline - time.monotonic()))
                acked += 1
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            logger.warning("kafka publish: %d of %d acked: %r", acked, len(messages), failed)
            raise PublishError(f"not acknowledged: {failed!r}", acked, len(messages))

    def ready(self, timeout_s: float) -> bool:
        """A bootstrap broker accepts a TCP connection (cheap; no producer state involved)."""
        for server in self._config["bootstrap_servers"]:
            host, _, port = server.rpartition(":")
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
                return True
            except OSError as exc:
                logger.info("kafka not ready at %s: %s", server, exc)
        return False

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


def _count_acked(futures: list[Any], deadline: float) -> int:
    acked = 0
    for future in futures:
        try:
            future.get(timeout=max(0.001, deadline - time.monotonic()))
            acked += 1
        except Exception:
            pass
    return acked
