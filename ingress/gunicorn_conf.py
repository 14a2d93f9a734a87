"""gunicorn settings: ``gunicorn -c ingress/gunicorn_conf.py 'ingress.app:get_app()'``.

Worker class: gunicorn's own ASGI worker on uvloop (the app is ``falcon.asgi``; Redis and
Kafka are asyncio clients). Chosen by measurement over gevent with a WSGI app
(docs/decisions/0003-asgi-ingress.md). The knobs (``INGRESS_WORKERS``, ``INGRESS_ASGI_LOOP``,
``PROMETHEUS_MULTIPROC_DIR``) are read through ``ingress.config.IngressConfig``. HTTP
parsing: the C parser of ``gunicorn_h1c`` (a dependency; gunicorn's default ``http_parser =
"auto"`` picks it when installed, else its pure-Python parser; docs/decisions/0005-gunicorn-h1c.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ingress.config import IngressConfig
from orderstream.core import logs

_ROOT = Path(__file__).resolve().parent.parent
_CONFIG = IngressConfig.from_env()
_METRICS_DIR = Path(_CONFIG.prometheus_multiproc_dir or _ROOT / ".local" / "ingress-metrics")
# for prometheus-client and for the workers' IngressConfig (multiprocess mode)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_METRICS_DIR)

worker_class = "asgi"
asgi_loop = _CONFIG.asgi_loop
workers = _CONFIG.workers
worker_connections = 4096  # concurrent connections per worker
keepalive = 75
timeout = 90  # > max long-poll wait
graceful_timeout = 20
backlog = 4096
accesslog = None  # GUNICORN_CMD_ARGS=--access-logfile=- turns access lines on
logger_class = "ingress.gunicorn_logger.Logger"  # atoms only when an access log is asked for
errorlog = "-"
loglevel = "info"
# the programs' one logging setup (JSON lines or text, the levels): orderstream.core.logs
logconfig_dict = logs.config(_CONFIG.settings, "ingress", own=("gunicorn.error",))
preload_app = False  # the Kafka producer and Redis pools are created in each worker


def on_starting(server: object) -> None:
    shutil.rmtree(_METRICS_DIR, ignore_errors=True)
    _METRICS_DIR.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: object) -> None:
    from orderstream.core import gctune

    gctune.tune()  # the app is loaded in this worker: freeze it (orderstream.core.gctune)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
