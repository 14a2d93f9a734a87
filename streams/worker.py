"""``orderstream worker --index N``: one Faust worker of the single app.

Web port 16066+N, data dir ``<data_dir>/N``, RocksDB (rocksdict) tables. Topics must
exist before it starts (the stack or the tests create them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import faust
import mode.loop

from orderstream.core import gctune, logs, tracing
from orderstream.core.settings import Settings
from streams.app import create_app

logger = logging.getLogger(__name__)


@click.command()
@click.option("--index", "index", default=0, show_default=True, type=int, help="worker number N")
@click.option("--web-port", type=int, default=None, help="default: 16066+N")
@click.option(
    "--web-host", default="127.0.0.1", show_default=True, help="web server (/metrics) address"
)
def worker(index: int, web_port: int | None, web_host: str) -> None:
    """Run one stock-decision worker (reserve_stock + settle_orders)."""
    mode.loop.use("uvloop")  # before the app or any loop exists
    settings = Settings.from_env()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # Faust creates only <N>/
    app = create_app(settings, worker_index=index, web_port=web_port, web_host=web_host)
    tracing.configure(settings, "worker")
    logger.info(
        "worker %s: app %s, broker %s, prefix %r, partitions %s",
        index,
        settings.app_id,
        settings.kafka_bootstrap,
        settings.topic_prefix,
        settings.partitions,
    )
    # the programs' one logging setup (orderstream.core.logs; the global --log-level and
    # --log-format, else the settings), applied by Faust's worker in place of its own
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=logs.config(settings, f"worker-{index}"),
    )
    # Faust's terminal spinner (on when loglevel >= WARN) sets the ROOT logger to DEBUG
    # so it can spin on every record: then every aiokafka ``log.debug`` per sent message
    # is formatted and filtered (docs/decisions/0021).
    worker.spinner = None
    gctune.tune()  # the app is declared: freeze it (orderstream.core.gctune)
    worker.execute_from_commandline()
