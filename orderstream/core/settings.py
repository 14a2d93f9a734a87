"""One frozen settings object, built once at start-up from the environment.

Business code never reads ``os.environ``; it is handed a ``Settings``.
Every variable is ``ORDERSTREAM_<FIELD>`` except the stack's connection variables
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``DATABASE_READ_URL``, ``REDIS_URL``,
``STOREFRONT_KEY``, ``ADMIN_KEY``),
which are the names written to ``.local/stack.env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path

from schemas.topics import DEAD_LETTER, DEFAULT_PARTITIONS, ORDERS_SHIPPED, TopicNames

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_ENV = REPO_ROOT / ".local" / "stack.env"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: str = "postgresql+psycopg://orderstream:orderstream@127.0.0.1:15432/orderstream"
    # reads that may be a little stale (the ingress's fallback GETs, reconcile's scans) go
    # here, a streaming replica; empty: the primary (database_url)
    database_read_url: str = ""
    redis_url: str = "redis://127.0.0.1:16379/0"
    storefront_key: str = ""
    admin_key: str = ""
    ingress_url: str = "http://127.0.0.1:18080"

    partitions: int = DEFAULT_PARTITIONS
    # copies of every topic (Faust's changelogs included) and how many an acks=all write
    # waits for; the local stack derives both from its broker count (orderstream.stack.config)
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # warm copies of each stock table partition on other workers (Faust's
    # table_standby_replicas): a worker's partitions then move to one that has the table
    # already, instead of one that must read the changelog; with one worker there is none
    standby_replicas: int = 1
    topic_prefix: str = ""
    app_id: str = "orderstream"
    data_dir: str = str(REPO_ROOT / ".local" / "workers")

    # order intake limits
    max_lines: int = 20
    max_quantity: int = 100
    max_body_bytes: int = 64 * 1024
    rate_limit_per_second: int = 10_000
    publish_timeout_s: float = 5.0
    max_wait_s: float = 30.0
    idempotency_ttl_s: int = 24 * 3600
    # refuse at the door (409) orders the read model shows cannot be filled (ingress.admission)
    sold_out_gate: bool = True
    # an admin command keeps the gate open for its product until the stock agent has applied
    # it, or at most this long (the pending set's TTL, in case that is never seen)
    sold_out_gate_pause_s: float = 30.0

    # settlement
    hold_time_s: float = 30.0
    # line records of stock_by_product are deleted this long after their decision (0: kept);
    # it must outlast every release of a line: the hold time, a cancel the sink has not
    # decided yet (streams.ledger.prune_lines)
    stock_line_retention_s: float = 6 * 3600.0
    # a pass over a partition's line records (to find old ones) starts at most this often:
    # every pass reads every line record, so it is a fraction of the retention (records live
    # up to retention + this)
    stock_prune_pass_s: float = 600.0
    # a worker whose agents process nothing this long while records wait stops (0: never)
    worker_stall_s: float = 45.0
    # logging, for every program (orderstream.core.logs): "json" lines or "text", the root
    # level, and per-logger levels ("kafka=ERROR,aiokafka=WARNING")
    log_format: str = "text"
    log_level: str = "INFO"
    log_levels: str = ""
    # OpenTelemetry traces (orderstream.core.tracing): "off", "otlp" (OTEL_EXPORTER_OTLP_*
    # say where) or "console"
    tracing: str = "off"
    # /readyz of a worker or the sink: at most this many records behind on any partition
    ready_max_lag: int = 10_000
    # retention of the topics whose history is read later: orders.shipped (downstream
    # consumers catching up, reconcile's shipped-event check) and the dead letters
    # (inspected and replayed); the other topics keep the broker's (24 h here)
    shipped_retention_hours: float = 7 * 24.0
    dead_letter_retention_hours: float = 30 * 24.0

    # customers (ingress.tokens, ingress.passwords, docs/identity.md): the JWKS file of
    # private signing keys (the first signs, every one verifies), the tokens' claims and
    # lifetimes, argon2id's cost, and the rate limits of sign-in and of a customer's requests
    jwt_keys_file: str = ""
    jwt_issuer: str = "orderstream"
    jwt_audience: str = "orderstream-api"
    jwt_leeway_s: int = 10
    access_token_ttl_s: int = 600
    refresh_token_ttl_s: int = 14 * 24 * 3600
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    auth_rate_limit_per_ip_per_minute: int = 300
    auth_rate_limit_per_email_per_minute: int = 10
    customer_rate_limit_per_second: int = 20

    # sink
    sink_batch_size: int = 500
    sink_batch_timeout_s: float = 0.05

    @property
    def read_database_url(self) -> str:
        """Where stale-tolerant reads go: the replica when there is one, else the primary."""
        return self.database_read_url or self.database_url

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def retention_ms(self) -> dict[str, int]:
        """``retention.ms`` of the topics that keep their own (full names), for ``stack init``."""
        return {
            self.topics(ORDERS_SHIPPED): int(self.shipped_retention_hours * 3_600_000),
            self.topics(DEAD_LETTER): int(self.dead_letter_retention_hours * 3_600_000),
        }

    @property
    def max_total(self) -> Decimal:
        return Decimal("1e12")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``.local/stack.env`` (if present) overlaid by the environment."""
        env: dict[str, str] = {}
        if STACK_ENV.exists():
            env.update(read_env_file(STACK_ENV))
        env.update(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper()) if f.name in _STACK_NAMES else None
            raw = env.get(f"ORDERSTREAM_{f.name.upper()}", raw)
            if raw is None:
                continue
            values[f.name] = _parse(f.default, raw)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` in a child process build these settings."""
        return {
            (f.name.upper() if f.name in _STACK_NAMES else f"ORDERSTREAM_{f.name.upper()}"): str(
                getattr(self, f.name)
            )
            for f in fields(self)
        }


_STACK_NAMES = {
    "kafka_bootstrap",
    "database_url",
    "database_read_url",
    "redis_url",
    "storefront_key",
    "admin_key",
    "ingress_url",
}


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(default: object, raw: str) -> object:
    """A setting's value from its environment text, typed like its default (bool, int, ...)."""
    if isinstance(default, bool):  # (before int: a bool is an int; bool("false") is True)
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"not a boolean: {raw!r} (use one of {sorted(_TRUE | _FALSE)})")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def read_env_file(path: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        result[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return result
