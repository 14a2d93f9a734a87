"""The systems under test: orderstream (the running stack) and the two baselines (started here)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from bench.baselines.config import BaselineSettings
from bench.baselines.store import create_engine, create_schema
from bench.cpu import ComponentSampler
from bench.exceptions import SystemUnavailable
from bench.figures import OrderOutcome
from bench.loadgen import Target
from bench.processes import (
    ManagedProcess,
    ensure_database,
    gunicorn,
    python_module,
    url_answers,
    wait_until_answers,
)
from bench.stages import pipeline_stages
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)

BASELINE_PORTS = {"baseline_lock": 18081, "baseline_lua": 18082}
BARE_FALCON_PORT = 18083


@dataclass(frozen=True)
class Tuning:
    """How the baselines (and the bare Falcon endpoint) are served."""

    workers: int = 2
    threads: int = 16
    lua_worker_threads: int = 4


@dataclass
class RunningSystem:
    target: Target
    database_url: str
    sampler: ComponentSampler
    wait_for_catalog: bool  # products become sellable asynchronously (orderstream)
    # latency per pipeline stage from the system's own topics (orderstream), else None
    stages: Callable[[Sequence[OrderOutcome]], dict[str, float]] | None = None


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _shared_ports(settings: Settings) -> dict[str, int]:
    return {
        "postgres": make_url(settings.database_url).port or 5432,
        "redis": _port(settings.redis_url, 6379),
    }


@contextmanager
def orderstream(settings: Settings) -> Iterator[RunningSystem]:
    health = f"{settings.ingress_url.rstrip('/')}/healthz"
    if not url_answers(health):
        raise SystemUnavailable(
            f"orderstream ingress at {settings.ingress_url} does not answer ({health})"
        )
    ports = {
        **_shared_ports(settings),
        "ingress": _port(settings.ingress_url, 80),
        "kafka": int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1]),
    }
    yield RunningSystem(
        target=Target(
            "orderstream",
            settings.ingress_url.rstrip("/"),
            settings.storefront_key,
            settings.admin_key,
        ),
        database_url=settings.database_url,
        sampler=ComponentSampler(ports=ports, scan_command_lines=True),
        wait_for_catalog=True,
        stages=partial(pipeline_stages, settings.kafka_bootstrap),
    )


@contextmanager
def baseline(
    name: str, settings: Settings, tuning: Tuning, log_dir: Path, port: int | None = None
) -> Iterator[RunningSystem]:
    """Create the database and schema, start gunicorn (and the queue worker), stop them after."""
    kind = name.removeprefix("baseline_")
    database_url = ensure_database(settings.database_url, f"bench_{kind}")
    config = BaselineSettings(
        database_url=database_url,
        redis_url=settings.redis_url,
        storefront_key=settings.storefront_key or "bench-storefront",
        admin_key=settings.admin_key or "bench-admin",
        redis_prefix=f"bench:{kind}:",
        pool_size=tuning.threads,
        worker_threads=tuning.lua_worker_threads,
    )
    engine = create_engine(config)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    port = port or BASELINE_PORTS[name]
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, ManagedProcess] = {}
    try:
        processes[name] = gunicorn(
            name, f"bench.baselines.{kind}_app:get_app()", port, config.to_env(),
            tuning.workers, tuning.threads, log_dir / f"{name}.log",
        ).start()  # fmt: skip
        if kind == "lua":
            processes["lua_worker"] = python_module(
                "lua_worker",
                "bench.baselines.lua_worker",
                config.to_env(),
                log_dir / "lua_worker.log",
            ).start()
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{url}/healthz", processes[name])
        yield RunningSystem(
            target=Target(name, url, config.storefront_key, config.admin_key),
            database_url=database_url,
            sampler=ComponentSampler(
                ports=_shared_ports(settings),
                pids={("ingress" if c == name else c): [p.pid] for c, p in processes.items()},
            ),
            wait_for_catalog=False,
        )
    finally:
        for process in processes.values():
            process.stop()


@contextmanager
def start(name: str, settings: Settings, tuning: Tuning, log_dir: Path) -> Iterator[RunningSystem]:
    if name == "orderstream":
        with orderstream(settings) as running:
            yield running
    else:
        with baseline(name, settings, tuning, log_dir) as running:
            yield running
