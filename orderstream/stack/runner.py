"""``up``, ``down`` and ``status`` of the local stack (behind ``make up`` and the tests)."""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

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


def external_brokers(external: External) -> int:
    return len(external.kafka_bootstrap.split(","))


def stack_values(
    cfg: StackConfig, settings: Settings, environ: Mapping[str, str], external: External | None
) -> dict[str, str]:
    previous = envfile.recorded(cfg.stack_env)
    # replication follows the local broker count; services run elsewhere say their own
    rf = settings.replication_factor if external else cfg.replication_factor
    min_isr = settings.min_insync_replicas if external else cfg.min_insync_replicas
    return {
        "INGRESS_URL": cfg.ingress_url,
        "KAFKA_BOOTSTRAP": external.kafka_bootstrap if external else cfg.kafka_bootstrap,
        "DATABASE_URL": external.database_url if external else cfg.database_url,
        "DATABASE_READ_URL": (settings.read_database_url if external else cfg.database_read_url),
        "REDIS_URL": external.redis_url if external else cfg.redis_url,
        "STOREFRONT_KEY": envfile.secret("STOREFRONT_KEY", environ, previous),
        "ADMIN_KEY": envfile.secret("ADMIN_KEY", environ, previous),
        "ORDERSTREAM_JWT_KEYS_FILE": envfile.jwt_keys_file(cfg.local, environ, previous),
        "ORDERSTREAM_PARTITIONS": str(settings.partitions),
        "ORDERSTREAM_REPLICATION_FACTOR": str(rf),
        "ORDERSTREAM_MIN_INSYNC_REPLICAS": str(min_isr),
        "ORDERSTREAM_STANDBY_REPLICAS": str(settings.standby_replicas),
        "ORDERSTREAM_DATA_DIR": str(cfg.local / "workers"),
        "ORDERSTREAM_BROKERS": str(external_brokers(external) if external else cfg.brokers),
        "ORDERSTREAM_PG_REPLICA": "1" if cfg.pg_replica and not external else "0",
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
        services = [*broker.programs(cfg), database.program(cfg), cache.program(cfg)]
        if cfg.pg_replica:
            services.append(database.replica_program(cfg))
    programs = pipeline.programs(cfg, values)
    supervisor.ensure_running(cfg, supervisor.render(cfg, [*services, *programs]))
    supervisor.start(cfg, [p.name for p in services if p.name != database.REPLICA])

    if external is None:
        wait_until("postgres (superuser)", lambda: database.ping_superuser(cfg), timeout_s)
        database.ensure_database(cfg)
        if cfg.pg_replica:
            database.prepare_replica(cfg)
            supervisor.start(cfg, [database.REPLICA])
            wait_until("postgres replica", lambda: database.ping(cfg.database_read_url), timeout_s)
    init(cfg, settings, values, timeout_s)
    envfile.write(cfg.stack_env, values)
    supervisor.start(cfg, [p.name for p in programs])
    names = {p.name for p in programs}
    for name, url in pipeline.readiness_urls(cfg).items():
        if name in names:
            wait_until(name, partial(require_ready, url), timeout_s)
    logger.info("stack up in %.1fs; %s", time.monotonic() - started, cfg.stack_env)
    return values


def require_ready(url: str) -> None:
    ready, detail = pipeline.readiness(url)
    if not ready:
        raise RuntimeError(detail)


def init(
    cfg: StackConfig, settings: Settings, values: Mapping[str, str], timeout_s: float = 120
) -> None:
    """Wait for Kafka (as many nodes as copies), PostgreSQL and Redis; create the topics;
    run the migrations. ``values`` (stack.env's) override ``settings``."""
    settings = Settings.from_env({**settings.to_env(), **values})
    bootstrap, nodes = values["KAFKA_BOOTSTRAP"], settings.replication_factor
    wait_until("kafka", lambda: broker.ping(bootstrap, nodes), timeout_s)
    wait_until("postgres", lambda: database.ping(values["DATABASE_URL"]), timeout_s)
    wait_until("redis", lambda: cache.ping(values["REDIS_URL"]), timeout_s)
    topics = [settings.topics(name) for name in ALL_TOPICS]
    created = broker.ensure_topics(
        bootstrap,
        topics,
        settings.partitions,
        settings.replication_factor,
        settings.min_insync_replicas,
        retention_ms=settings.retention_ms,
    )
    logger.info("topics: %d wanted, created %s", len(topics), created or "none")
    pipeline.migrate(cfg, values)


def down(cfg: StackConfig) -> dict[int, str]:
    """Stop everything (data is kept); returns processes that had to be killed by hand."""
    supervisor.shutdown(cfg)
    return processes.kill_leftovers(cfg)


def clean(cfg: StackConfig) -> None:
    """Stop the stack and delete its data: ``.local`` and a cluster kept outside it, and
    the same for a stack nested in it (the replicated one the fault tests start)."""
    for nested in sorted(p.parent for p in cfg.local.glob("*/supervisord.conf")):
        clean(replace(cfg, local=nested))
    down(cfg)
    database.remove(cfg.local)
    shutil.rmtree(cfg.local, ignore_errors=True)


def kafka_status(cfg: StackConfig) -> list[str]:
    """Kafka's nodes, its KRaft quorum and its under-replicated partitions, or why not."""
    try:
        view = broker.cluster_view(cfg, cfg.kafka_bootstrap)
    except Exception as exc:
        return [f"kafka: no answer ({exc.__class__.__name__}: {str(exc)[:200]})"]
    missing = sorted(set(cfg.broker_nodes) - set(view.nodes))
    short = view.under_replicated
    shown = ", ".join(short[:8]) + (", ..." if len(short) > 8 else "")
    voters = ", ".join(f"node {n} {state}" for n, state in sorted(view.voters.items()))
    return [
        f"kafka nodes: {len(view.nodes)} of {cfg.brokers} registered {view.nodes}"
        + (f", missing {missing}" if missing else ""),
        f"kafka replication: {cfg.replication_factor} copies, "
        f"min.insync.replicas {cfg.min_insync_replicas}",
        f"controller quorum: leader {view.quorum_leader}; {voters}",
        f"under-replicated partitions: {len(short)} of {view.partitions}"
        + (f" ({shown})" if short else ""),
    ]


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
        **{
            f"{broker.program_name(cfg, n)}{suffix}": port(n)
            for n in cfg.broker_nodes
            for suffix, port in (("", cfg.broker_port), (" controller", cfg.controller_port_of))
        },
        "postgres": cfg.pg_port,
        **({database.REPLICA: cfg.pg_replica_port} if cfg.pg_replica else {}),
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
    lines.append("")
    running = supervisor.daemon_pid(cfg) is not None
    for name, url in pipeline.readiness_urls(cfg).items():
        ready, detail = pipeline.readiness(url, timeout_s=1.0) if running else (False, "-")
        lines.append(f"{name:<18} {'ready' if ready else 'not ready: ' + detail}")
    lines.append("")
    lines.extend(kafka_status(cfg))
    lines.append(f"\nstorefront page: {cfg.ingress_url}/shop (buyers register and sign in)")
    lines.append(f"\nenv: {cfg.stack_env}{'' if cfg.stack_env.exists() else ' (missing)'}")
    lines.append(f"logs: {cfg.logs}/")
    lines.append(f"postgres data: {database.cluster_home(cfg.local) / 'data'}/")
    return "\n".join(lines)
