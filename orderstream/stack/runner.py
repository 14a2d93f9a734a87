"""``up``, ``down`` and ``status`` of the local stack (behind ``make up`` and the tests)."""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orderstream.core.settings import Settings
from orderstream.stack import broker, cache, database, envfile, pipeline, processes, supervisor
from orderstream.stack.config import StackConfig
from schemas.topics import ALL_TOPICS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class External:
    """Services someone else runs (e.g. testcontainers); we only add topics and the pipeline."""

    kafka_bootstrap: str
    database_url: str
    redis_url: str


def wait_until(what: str, probe: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
            logger.info("%s is ready", what)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout_s:.0f}s: {exc!r}") from exc
            time.sleep(0.5)


def stack_values(
    cfg: StackConfig, settings: Settings, environ: Mapping[str, str], external: External | None
) -> dict[str, str]:
    previous = envfile.recorded(cfg.stack_env)
    return {
        "INGRESS_URL": cfg.ingress_url,
        "KAFKA_BOOTSTRAP": external.kafka_bootstrap if external else cfg.kafka_bootstrap,
        "DATABASE_URL": external.database_url if external else cfg.database_url,
        "REDIS_URL": external.redis_url if external else cfg.redis_url,
        "STOREFRONT_KEY": envfile.secret("STOREFRONT_KEY", environ, previous),
        "ADMIN_KEY": envfile.secret("ADMIN_KEY", environ, previous),
        "ORDERSTREAM_PARTITIONS": str(settings.partitions),
        "ORDERSTREAM_WORKERS": str(cfg.workers),
        "ORDERSTREAM_PIPELINE_NICE": str(cfg.pipeline_nice),
    }


def up(
    cfg: StackConfig,
    settings: Settings,
    environ: Mapping[str, str],
    external: External | None = None,
    timeout_s: float = 120,
) -> dict[str, str]:
    """Bring the stack up (idempotent) and return the values written to stack.env."""
    started = time.monotonic()
    cfg.local.mkdir(parents=True, exist_ok=True)
    values = stack_values(cfg, settings, environ, external)
    services = []
    if external is None:
        database.prepare(cfg)  # first: it may refuse the stack directory (ClusterUnreachable)
        broker.prepare(cfg)
        cache.prepare(cfg)
        services = [broker.program(cfg), database.program(cfg), cache.program(cfg)]
    programs = pipeline.programs(cfg, values)
    supervisor.ensure_running(cfg, supervisor.render(cfg, [*services, *programs]))
    supervisor.start(cfg, [p.name for p in services])

    if external is None:
        wait_until("postgres (superuser)", lambda: database.ping_superuser(cfg), timeout_s)
        database.ensure_database(cfg)
    init(cfg, settings, values, timeout_s)
    envfile.write(cfg.stack_env, values)
    supervisor.start(cfg, [p.name for p in programs])
    logger.info("stack up in %.1fs; %s", time.monotonic() - started, cfg.stack_env)
    return values


def init(
    cfg: StackConfig, settings: Settings, values: Mapping[str, str], timeout_s: float = 120
) -> None:
    """Wait for Kafka, PostgreSQL and Redis; create the topics; run the migrations."""
    wait_until("kafka", lambda: broker.ping(values["KAFKA_BOOTSTRAP"]), timeout_s)
    wait_until("postgres", lambda: database.ping(values["DATABASE_URL"]), timeout_s)
    wait_until("redis", lambda: cache.ping(values["REDIS_URL"]), timeout_s)
    topics = [settings.topics(name) for name in ALL_TOPICS]
    created = broker.ensure_topics(values["KAFKA_BOOTSTRAP"], topics, settings.partitions)
    logger.info("topics: %d wanted, created %s", len(topics), created or "none")
    pipeline.migrate(cfg, values)


def down(cfg: StackConfig) -> dict[int, str]:
    """Stop everything (data is kept); returns processes that had to be killed by hand."""
    supervisor.shutdown(cfg)
    return processes.kill_leftovers(cfg)


def clean(cfg: StackConfig) -> None:
    """Stop the stack and delete its data: ``.local`` and a cluster kept outside it."""
    down(cfg)
    database.remove(cfg.local)
    shutil.rmtree(cfg.local, ignore_errors=True)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def status(cfg: StackConfig) -> str:
    lines: list[str] = []
    if supervisor.daemon_pid(cfg) is None:
        lines.append(f"supervisord: not running ({cfg.supervisor_conf})")
    else:
        lines.append(supervisor.ctl(cfg, "status").stdout.rstrip())
    ports = {
        "kafka": cfg.kafka_port,
        "kafka-controller": cfg.controller_port,
        "postgres": cfg.pg_port,
        "redis": cfg.redis_port,
        "ingress": cfg.ingress_port,
        **{f"worker-{n} web": cfg.worker_web_port + n for n in range(cfg.workers)},
        "sink metrics": cfg.sink_metrics_port,
        "relay metrics": cfg.relay_metrics_port,
    }
    lines.append("")
    for name, port in ports.items():
        state = "listening" if port_open(port) else "-"
        lines.append(f"{name:<18} 127.0.0.1:{port:<6} {state}")
    if cfg.stack_env.exists():
        key = envfile.recorded(cfg.stack_env).get("STOREFRONT_KEY", "")
        lines.append(f"\nstorefront page: {cfg.ingress_url}/shop#key={key}")
    lines.append(f"\nenv: {cfg.stack_env}{'' if cfg.stack_env.exists() else ' (missing)'}")
    lines.append(f"logs: {cfg.logs}/")
    lines.append(f"postgres data: {database.cluster_home(cfg.local) / 'data'}/")
    return "\n".join(lines)
