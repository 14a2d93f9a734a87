"""Ingress configuration: the shared ``Settings`` plus what only the ingress needs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from orderstream.core.readmodel import Keys
from orderstream.core.settings import Settings


@dataclass(frozen=True)
class IngressConfig:
    settings: Settings
    # Redis read-model / idempotency / rate-limit namespace; the same per-run prefix as topics.
    namespace: str = ""
    # set when gunicorn runs several workers (prometheus-client multiprocess mode)
    prometheus_multiproc_dir: str | None = None
    # long-poll: re-read the status at least this often (safety net for a missed publish)
    wait_recheck_s: float = 5.0
    keys: Keys = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", Keys(self.namespace))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> IngressConfig:
        return cls(settings=settings, namespace=settings.topic_prefix, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngressConfig:
        env = os.environ if environ is None else environ
        return cls.from_settings(
            Settings.from_env(environ),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )


def key_id(api_key: str) -> str:
    """A short, non-reversible id of an API key: scopes Redis keys, never logs the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
