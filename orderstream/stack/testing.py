"""The test suite's view of a stack: find a running one, or start one (see tests/conftest.py)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from orderstream.core.settings import Settings
from orderstream.stack import broker, cache, database, envfile, runner
from orderstream.stack.config import StackConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackHandle:
    settings: Settings
    env: Mapping[str, str]
    kind: str  # "running", "testcontainers" or "local"
    started: bool  # whether this test session started it (and so stops it)

    def settings_for(self, namespace: str) -> Settings:
        """Settings whose topics carry the test's namespace prefix."""
        return replace(self.settings, topic_prefix=namespace)


def answers(env: Mapping[str, str]) -> bool:
    try:
        for name in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL"):
            if name not in env:
                return False
        runner.wait_until("redis", lambda: cache.ping(env["REDIS_URL"]), 0)
        runner.wait_until("postgres", lambda: database.ping(env["DATABASE_URL"]), 0)
        runner.wait_until("kafka", lambda: broker.ping(env["KAFKA_BOOTSTRAP"]), 5)
        return True
    except Exception as exc:
        logger.info("stack.env present but the stack does not answer: %s", exc)
        return False


def _handle(env: Mapping[str, str], kind: str, started: bool) -> StackHandle:
    return StackHandle(Settings.from_env({**os.environ, **env}), dict(env), kind, started)


def acquire(environ: Mapping[str, str] | None = None) -> tuple[StackHandle, Callable[[], object]]:
    """(1) the running local stack, (2) testcontainers when a Docker engine answers,
    (3) the local stack started here (stopped by the returned cleanup)."""
    environ = dict(os.environ if environ is None else environ)
    cfg = StackConfig.from_env(environ)
    recorded = envfile.recorded(cfg.stack_env)
    if recorded and answers(recorded):
        return _handle(recorded, "running", False), lambda: None

    from orderstream.stack import containers

    if containers.engine_answers():
        external, stop_containers = containers.start()
        tc_cfg = StackConfig.from_env(
            {**environ, "ORDERSTREAM_STACK_DIR": tempfile.mkdtemp(prefix="os-tc-")}
        )
        try:
            values = runner.up(tc_cfg, Settings.from_env(environ), environ, external)
        except BaseException:
            runner.down(tc_cfg)
            stop_containers()
            raise

        # subprocesses of the tests (e.g. `orderstream stack ctl`) find this stack too
        os.environ["ORDERSTREAM_STACK_DIR"] = str(tc_cfg.local)

        def stop_tc() -> None:
            runner.down(tc_cfg)
            stop_containers()

        return _handle(values, "testcontainers", True), stop_tc

    values = runner.up(cfg, Settings.from_env({**recorded, **environ}), environ)
    return _handle(values, "local", True), lambda: runner.down(cfg)


REPLICATED_BROKERS = 3
REPLICATED_PORT_OFFSET = 500  # beside the shared stack's ports (19092..., 15432, 18080, ...)


def replicated_config(environ: Mapping[str, str] | None = None) -> StackConfig:
    """The replicated stack the fault tests drive: three Kafka nodes and a PostgreSQL replica
    in ``.local/replicated`` on ports shifted by 500, unless the stack of ``.local`` has three
    nodes itself."""
    environ = dict(os.environ if environ is None else environ)
    main = StackConfig.from_env(environ)
    if main.brokers >= REPLICATED_BROKERS:
        return main
    return StackConfig.from_env(
        {
            **environ,
            "ORDERSTREAM_STACK_DIR": str(main.local / "replicated"),
            "ORDERSTREAM_STACK_PORT_OFFSET": str(REPLICATED_PORT_OFFSET),
            "ORDERSTREAM_BROKERS": str(REPLICATED_BROKERS),
            "ORDERSTREAM_PG_REPLICA": "1",
        }
    )


def acquire_replicated(
    environ: Mapping[str, str] | None = None,
) -> tuple[StackConfig, Callable[[], object]]:
    """The replicated stack, brought up (idempotent: a running one keeps its processes); the
    returned cleanup stops it, data kept, when it was not running before."""
    from orderstream.stack import supervisor

    environ = dict(os.environ if environ is None else environ)
    cfg = replicated_config(environ)
    was_running = supervisor.daemon_pid(cfg) is not None
    recorded = envfile.recorded(cfg.stack_env)
    settings = Settings.from_env({"ORDERSTREAM_STANDBY_REPLICAS": "1", **recorded})
    env = {**environ, "ORDERSTREAM_STACK_DIR": str(cfg.local)}
    runner.up(cfg, settings, env)
    return cfg, (lambda: None) if was_running else (lambda: runner.down(cfg))
