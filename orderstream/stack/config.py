"""Where the local stack lives and which ports it uses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orderstream.core.settings import REPO_ROOT, STACK_ENV, read_env_file

DEFAULT_WORKERS = 2
DEFAULT_WORKER_WEB_PORT = 16066
DEFAULT_BROKERS = 1  # docs/decisions/0022-one-broker-by-default.md
MAX_REPLICATION_FACTOR = 3


@dataclass(frozen=True)
class StackConfig:
    root: Path
    local: Path
    kafka_port: int = 19092
    controller_port: int = 19093
    pg_port: int = 15432
    pg_replica_port: int = 15433
    redis_port: int = 16379
    ingress_port: int = 18080
    worker_web_port: int = DEFAULT_WORKER_WEB_PORT  # worker N listens on worker_web_port + N
    sink_metrics_port: int = 16090
    relay_metrics_port: int = 16091
    workers: int = DEFAULT_WORKERS
    # Kafka nodes (each a combined broker and KRaft controller); node N (1-based) listens on
    # kafka_port + 2(N-1) and its controller on controller_port + 2(N-1)
    brokers: int = DEFAULT_BROKERS
    # a PostgreSQL streaming replica (hot standby) beside the primary, for stale-tolerant reads
    pg_replica: bool = False
    # niceness of the workers, sink and relay (0-19; 0: same CPU priority as the ingress)
    pipeline_nice: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """``ORDERSTREAM_STACK_DIR`` moves ``.local``; ``ORDERSTREAM_STACK_PORT_OFFSET`` shifts
        every port (to run a second stack beside the shared one); ``ORDERSTREAM_WORKERS``
        sets the worker count (else the one recorded in ``stack.env``, else 2) and
        ``ORDERSTREAM_BROKERS`` the Kafka node count (likewise, else 1);
        ``ORDERSTREAM_PG_REPLICA=1`` adds a PostgreSQL replica (likewise recorded);
        ``ORDERSTREAM_PIPELINE_NICE`` runs the workers, sink and relay at that niceness, so
        that on a shared host order intake comes first (docs/decisions/0016-pipeline-nice.md); like
        the worker count it is recorded in ``stack.env`` and kept by later ``make up``s."""
        env = dict(os.environ if environ is None else environ)
        local = Path(env.get("ORDERSTREAM_STACK_DIR") or REPO_ROOT / ".local").resolve()
        offset = int(env.get("ORDERSTREAM_STACK_PORT_OFFSET") or 0)
        recorded = read_env_file(local / "stack.env") if (local / "stack.env").exists() else {}
        workers = int(
            env.get("ORDERSTREAM_WORKERS") or recorded.get("ORDERSTREAM_WORKERS") or DEFAULT_WORKERS
        )
        brokers = int(
            env.get("ORDERSTREAM_BROKERS") or recorded.get("ORDERSTREAM_BROKERS") or DEFAULT_BROKERS
        )
        if brokers < 1:
            raise ValueError(f"ORDERSTREAM_BROKERS must be at least 1, not {brokers}")
        replica = env.get("ORDERSTREAM_PG_REPLICA") or recorded.get("ORDERSTREAM_PG_REPLICA") or "0"
        nice = (
            env.get("ORDERSTREAM_PIPELINE_NICE") or recorded.get("ORDERSTREAM_PIPELINE_NICE") or "0"
        )
        return cls(
            root=REPO_ROOT,
            local=local,
            kafka_port=19092 + offset,
            controller_port=19093 + offset,
            pg_port=15432 + offset,
            pg_replica_port=15433 + offset,
            redis_port=16379 + offset,
            ingress_port=18080 + offset,
            worker_web_port=DEFAULT_WORKER_WEB_PORT + offset,
            sink_metrics_port=16090 + offset,
            relay_metrics_port=16091 + offset,
            workers=workers,
            brokers=brokers,
            pg_replica=replica.strip().lower() in ("1", "true", "yes", "on"),
            pipeline_nice=min(19, max(0, int(nice))),
        )

    @property
    def logs(self) -> Path:
        return self.local / "logs"

    @property
    def run(self) -> Path:
        return self.local / "run"

    @property
    def stack_env(self) -> Path:
        return self.local / "stack.env" if self.local != STACK_ENV.parent else STACK_ENV

    @property
    def supervisor_conf(self) -> Path:
        return self.local / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def venv_bin(self) -> Path:
        return self.root / ".venv" / "bin"

    @property
    def broker_nodes(self) -> list[int]:
        """The Kafka node ids, 1 to ``brokers``."""
        return list(range(1, self.brokers + 1))

    def broker_port(self, node: int) -> int:
        return self.kafka_port + 2 * (node - 1)

    def controller_port_of(self, node: int) -> int:
        return self.controller_port + 2 * (node - 1)

    @property
    def replication_factor(self) -> int:
        """Every topic's replication factor: one copy per node, at most three."""
        return min(self.brokers, MAX_REPLICATION_FACTOR)

    @property
    def min_insync_replicas(self) -> int:
        """Copies an ``acks=all`` write waits for: all but one, so that one node can be lost
        without refusing writes and no acknowledged write lives on one node only."""
        return max(1, self.replication_factor - 1)

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in self.broker_nodes)

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://orderstream:orderstream@127.0.0.1:{self.pg_port}/orderstream"

    @property
    def database_read_url(self) -> str:
        """The replica's URL with one, else the primary's."""
        if not self.pg_replica:
            return self.database_url
        return self.database_url.replace(f":{self.pg_port}/", f":{self.pg_replica_port}/")

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"
