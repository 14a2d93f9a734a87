"""Where the local stack lives and which ports it uses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orderstream.core.settings import REPO_ROOT, STACK_ENV, read_env_file

DEFAULT_WORKERS = 2
DEFAULT_WORKER_WEB_PORT = 16066


@dataclass(frozen=True)
class StackConfig:
    root: Path
    local: Path
    kafka_port: int = 19092
    controller_port: int = 19093
    pg_port: int = 15432
    redis_port: int = 16379
    ingress_port: int = 18080
    worker_web_port: int = DEFAULT_WORKER_WEB_PORT  # worker N listens on worker_web_port + N
    sink_metrics_port: int = 16090
    relay_metrics_port: int = 16091
    workers: int = DEFAULT_WORKERS
    # niceness of the workers, sink and relay (0-19; 0: same CPU priority as the ingress)
    pipeline_nice: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """``ORDERSTREAM_STACK_DIR`` moves ``.local``; ``ORDERSTREAM_STACK_PORT_OFFSET`` shifts
        every port (to run a second stack beside the shared one); ``ORDERSTREAM_WORKERS``
        sets the worker count (else the one recorded in ``stack.env``, else 2);
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
        nice = (
            env.get("ORDERSTREAM_PIPELINE_NICE") or recorded.get("ORDERSTREAM_PIPELINE_NICE") or "0"
        )
        return cls(
            root=REPO_ROOT,
            local=local,
            kafka_port=19092 + offset,
            controller_port=19093 + offset,
            pg_port=15432 + offset,
            redis_port=16379 + offset,
            ingress_port=18080 + offset,
            worker_web_port=DEFAULT_WORKER_WEB_PORT + offset,
            sink_metrics_port=16090 + offset,
            relay_metrics_port=16091 + offset,
            workers=workers,
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
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://orderstream:orderstream@127.0.0.1:{self.pg_port}/orderstream"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"
