"""The project's own programs, added to supervisord only once their module exists."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from orderstream.stack.config import DEFAULT_WORKER_WEB_PORT, StackConfig
from orderstream.stack.supervisor import Program

logger = logging.getLogger(__name__)


def has_module(cfg: StackConfig, name: str) -> bool:
    if str(cfg.root) not in sys.path:  # modules written after the editable install
        sys.path.insert(0, str(cfg.root))
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# stack.env values no program reads: kept out of the programs' environment, so that changing
# one (``ORDERSTREAM_WORKERS=3 make up``) restarts no program (another broker count changes
# KAFKA_BOOTSTRAP, which every program reads)
STACK_ONLY = frozenset({"ORDERSTREAM_WORKERS", "ORDERSTREAM_BROKERS", "ORDERSTREAM_PG_REPLICA"})


def programs(cfg: StackConfig, env: Mapping[str, str]) -> list[Program]:
    """The pipeline's programs. Changing the worker count adds or removes ``worker-N``
    programs only: supervisord's ``update`` restarts a program only when its own entry
    changed."""
    env = {k: v for k, v in env.items() if k not in STACK_ONLY}
    # the stack's programs log JSON lines (``ORDERSTREAM_LOG_FORMAT=text make up``: text)
    log_format = os.environ.get("ORDERSTREAM_LOG_FORMAT", "json")
    env = {
        **env,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(cfg.root),
        "ORDERSTREAM_LOG_FORMAT": log_format,
        **tracing_env(os.environ),
    }
    bin_ = cfg.venv_bin
    # the pipeline's processes, behind the ingress for the CPU when asked (coreutils nice)
    nice = ["nice", "-n", str(cfg.pipeline_nice)] if cfg.pipeline_nice > 0 else []
    found: list[Program] = []
    if has_module(cfg, "ingress.app"):
        conf = cfg.root / "ingress" / "gunicorn_conf.py"
        command = [
            str(bin_ / "gunicorn"),
            *(["-c", str(conf)] if conf.exists() else []),
            "ingress.app:get_app()",
            "--bind",
            f"127.0.0.1:{cfg.ingress_port}",
        ]
        found.append(Program("ingress", command, cfg.root, env, autostart=False, priority=50))
    if has_module(cfg, "streams.worker"):
        for n in range(cfg.workers):
            command = [*nice, str(bin_ / "orderstream"), "worker", "--index", str(n)]
            if cfg.worker_web_port != DEFAULT_WORKER_WEB_PORT:  # shifted ports: tell the worker
                command += ["--web-port", str(cfg.worker_web_port + n)]
            found.append(
                Program(
                    f"worker-{n}",
                    command,
                    cfg.root,
                    env,
                    autostart=False,
                    priority=40,
                    stopwaitsecs=60,
                )
            )
    if has_module(cfg, "sinks.cli"):
        metrics_ports = {"sink": cfg.sink_metrics_port, "relay": cfg.relay_metrics_port}
        for name, port in metrics_ports.items():
            command = [*nice, str(bin_ / "orderstream"), name, "--metrics-port", str(port)]
            found.append(Program(name, command, cfg.root, env, autostart=False, priority=45))
    return found


def tracing_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``ORDERSTREAM_TRACING`` and OpenTelemetry's own ``OTEL_*`` variables, as ``make up``
    was given them: ``ORDERSTREAM_TRACING=otlp OTEL_EXPORTER_OTLP_ENDPOINT=... make up``
    restarts the programs traced, a plain ``make up`` untraced (orderstream.core.tracing)."""
    if environ.get("ORDERSTREAM_TRACING", "off") == "off":
        return {}
    return {k: v for k, v in environ.items() if k == "ORDERSTREAM_TRACING" or k.startswith("OTEL_")}


def readiness_urls(cfg: StackConfig) -> dict[str, str]:
    """Each pipeline program's ``/readyz`` (docs/operations.md, "Health")."""
    local = "http://127.0.0.1"
    return {
        "ingress": f"{cfg.ingress_url}/readyz",
        **{f"worker-{n}": f"{local}:{cfg.worker_web_port + n}/readyz" for n in range(cfg.workers)},
        "sink": f"{local}:{cfg.sink_metrics_port}/readyz",
        "relay": f"{local}:{cfg.relay_metrics_port}/readyz",
    }


def readiness(url: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether ``url`` (a ``/readyz``) answers ready, and what it said (the failed checks)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True, "ready"
    except urllib.error.HTTPError as error:
        try:
            checks = json.loads(error.read()).get("checks", {})
        except ValueError:
            return False, f"HTTP {error.code}"
        failed = [f"{name}: {c.get('detail')}" for name, c in checks.items() if not c.get("ok")]
        return False, "; ".join(failed) or f"HTTP {error.code}"
    except OSError as error:
        return False, f"no answer ({error})"


def migrate(cfg: StackConfig, env: Mapping[str, str]) -> bool:
    """``orderstream migrate`` when the sink's CLI exists; returns whether it ran."""
    if not has_module(cfg, "sinks.cli"):
        return False
    logger.info("orderstream migrate")
    full_env = {**os.environ, **env, "PYTHONPATH": str(cfg.root)}
    command = [sys.executable, "-c", "from orderstream.cli import main; main()", "migrate"]
    subprocess.run(command, cwd=cfg.root, env=full_env, check=True)
    return True
