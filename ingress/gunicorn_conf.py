"""gunicorn settings: ``gunicorn -c ingress/gunicorn_conf.py 'ingress.app:get_app()'``.

Worker class: gevent (chosen by measurement, see README "HTTP API (ingress)": more orders/s and
a lower p99 than gthread on a quiet machine; with 500 parked long-pollers it keeps ~0.96-1.1 of
its intake since the long-poll and Redis changes of 2026-11-21).
Override with INGRESS_WORKER_CLASS / INGRESS_WORKERS / INGRESS_THREADS for experiments.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_METRICS_DIR = Path(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _ROOT / ".local" / "ingress-metrics"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_METRICS_DIR)

worker_class = os.environ.get("INGRESS_WORKER_CLASS", "gevent")
workers = int(os.environ.get("INGRESS_WORKERS", "2"))
threads = int(os.environ.get("INGRESS_THREADS", "64"))  # gthread only
worker_connections = 4096  # gevent / asgi: concurrent connections per worker
keepalive = 75
timeout = 90  # > max long-poll wait
graceful_timeout = 20
backlog = 4096
accesslog = None
errorlog = "-"
loglevel = "info"
preload_app = False  # the Kafka producer and Redis pools are created in each worker


def on_starting(server: object) -> None:
    shutil.rmtree(_METRICS_DIR, ignore_errors=True)
    _METRICS_DIR.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: object) -> None:
    from ingress import gunicorn_write

    gunicorn_write.install()  # headers + body in one send() (gunicorn's own HTTP workers)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
