"""Ingress configuration: the shared ``Settings`` plus what only the ingress needs.

Built once at start (``IngressConfig.from_env``, by ``ingress.app.get_app`` and by
``ingress/gunicorn_conf.py``) and passed in; it also chooses the implementations the
composition root wires (``redis_batch``, ``redis_client``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orderstream.core.readmodel import Keys
from orderstream.core.settings import Settings

# what carries the batched commands and the long-polls' subscriptions: the hand-made hiredis
# wire (ingress.respwire, redis:// URLs only) or redis-py's pipelines and PubSub
RedisClient = Literal["wire", "pipeline"]


@dataclass(frozen=True)
class IngressConfig:
    settings: Settings
    # Redis read-model / idempotency / rate-limit namespace; the same per-run prefix as topics.
    namespace: str = ""
    # set when gunicorn runs several workers (prometheus-client multiprocess mode)
    prometheus_multiproc_dir: str | None = None
    # long-poll: re-read the status at least this often (safety net for a missed publish)
    wait_recheck_s: float = 5.0
    # group commit of the hot Redis commands (ingress.redisbatch; docs/decisions/0006)
    redis_batch: bool = True
    # what the batches and subscriptions go out on (docs/decisions/0007)
    redis_client: RedisClient = "wire"
    # the Kafka producer's linger (ingress.publisher)
    kafka_linger_ms: int = 2
    # gunicorn (ingress/gunicorn_conf.py): worker processes and their event loop
    workers: int = 2
    asgi_loop: str = "uvloop"  # "asyncio" lets py-spy follow the frames
    keys: Keys = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", Keys(self.namespace))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> IngressConfig:
        return cls(settings=settings, namespace=settings.topic_prefix, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngressConfig:
        """``Settings.from_env`` plus the ingress' own variables (``INGRESS_*``, the
        names and defaults of docs/operations.md)."""
        env = os.environ if environ is None else environ
        return cls.from_settings(
            Settings.from_env(environ),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            redis_batch=env.get("INGRESS_REDIS_BATCH", "1") != "0",
            redis_client="pipeline" if env.get("INGRESS_REDIS_WIRE", "1") == "0" else "wire",
            kafka_linger_ms=int(env.get("INGRESS_KAFKA_LINGER_MS", "2")),
            workers=int(env.get("INGRESS_WORKERS", "2")),
            asgi_loop=env.get("INGRESS_ASGI_LOOP", "uvloop"),
        )


def key_id(api_key: str) -> str:
    """A short, non-reversible id of an API key: scopes Redis keys, never logs the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
