"""Settings for a baseline process, built once from the environment the harness sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineSettings:
    database_url: str
    redis_url: str
    storefront_key: str
    admin_key: str
    redis_prefix: str
    pool_size: int = 16
    lock_ttl_ms: int = 10_000
    lock_attempts: int = 5
    backoff_min_s: float = 0.010
    backoff_max_s: float = 0.200
    max_wait_s: float = 30.0
    worker_threads: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BaselineSettings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env["BENCH_DATABASE_URL"],
            redis_url=env["BENCH_REDIS_URL"],
            storefront_key=env["BENCH_STOREFRONT_KEY"],
            admin_key=env["BENCH_ADMIN_KEY"],
            redis_prefix=env["BENCH_REDIS_PREFIX"],
            pool_size=int(env.get("BENCH_POOL_SIZE", "16")),
            worker_threads=int(env.get("BENCH_WORKER_THREADS", "8")),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "BENCH_DATABASE_URL": self.database_url,
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_STOREFRONT_KEY": self.storefront_key,
            "BENCH_ADMIN_KEY": self.admin_key,
            "BENCH_REDIS_PREFIX": self.redis_prefix,
            "BENCH_POOL_SIZE": str(self.pool_size),
            "BENCH_WORKER_THREADS": str(self.worker_threads),
        }
