"""A real worker subprocess on the real Kafka, under a test's own topic prefix and app id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from orderstream.core.settings import Settings
from schemas import codec
from schemas import topics as names
from schemas.common import event_id_for
from schemas.inventory import UpsertProduct
from schemas.orders import OrderLineRequested

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    step: float = 0.2,
    progress: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate``; on timeout fail saying what was awaited and, from ``progress``,
    how far it got."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    got = f" ({progress()})" if progress is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{got}")


_RUN_CLI = """
from orderstream.cli import main
main()
"""

#: The stock agent hangs on the first batch holding an order request (after the catalog):
#: records wait on its partitions and nothing more is decided, as in a stuck worker.
STUCK_ON_FIRST_ORDER = """
import asyncio
from streams import stock

_process = stock.StockProcessor.process


async def _stuck(self, events):
    if any(e.message.topic.endswith("orders.requests") for e in events):
        await asyncio.sleep(3600)
    await _process(self, events)


stock.StockProcessor.process = _stuck
"""


class StreamsEnv:
    """Topics under ``prefix``, a worker process, a producer and output readers."""

    def __init__(
        self, base: Settings, prefix: str, tmp: Path, partitions: int = 4, hold_time_s: float = 30.0
    ) -> None:
        self.prefix = prefix
        self.app_id = f"{prefix}app-{uuid.uuid4().hex[:6]}"
        self.settings = Settings(
            kafka_bootstrap=base.kafka_bootstrap,
            redis_url=base.redis_url,
            partitions=partitions,
            topic_prefix=prefix,
            app_id=self.app_id,
            data_dir=str(tmp / "workers"),
            hold_time_s=hold_time_s,
        )
        self.tmp = tmp
        self.admin = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
        self.topics = [self.settings.topics(t) for t in names.ALL_TOPICS]
        self.admin.create_topics(
            [NewTopic(t, partitions, 1) for t in self.topics], timeout_ms=30000
        )
        self.producer = KafkaProducer(
            bootstrap_servers=base.kafka_bootstrap, acks="all", linger_ms=5
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        # Like the supervisor (autorestart), for a test that asks (start_worker(restart=True)):
        # a worker that exits on its own (the stall watchdog stops a stuck worker) is
        # started again. Elsewhere a worker that dies stays dead, and its test fails.
        self._wanted: int | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._keeper = threading.Thread(target=self._keep_running, daemon=True)
        self._keeper.start()

    # ----------------------------------------------------------------- worker
    def start_worker(self, index: int = 0, fault: str | None = None, restart: bool = False) -> None:
        """Start a worker; ``fault`` is Python run in it before the CLI (fault injection,
        e.g. ``STUCK_ON_FIRST_ORDER``). With ``restart`` it is started again (without the
        fault) whenever it exits, until killed or stopped."""
        with self._lock:
            self._wanted = index if restart else None
            self._spawn(index, fault)

    def _keep_running(self) -> None:
        while not self._closed.wait(0.5):
            with self._lock:
                if (
                    self._wanted is not None
                    and self.proc is not None
                    and self.proc.poll() is not None
                ):
                    self._spawn(self._wanted)

    def _spawn(self, index: int, fault: str | None = None) -> None:
        worker_settings = replace(self.settings, topic_prefix=self.prefix, app_id=self.app_id)
        env = {**os.environ, **worker_settings.to_env()}
        self.runs += 1
        log = open(self.tmp / f"worker-{self.runs}.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *(["-c", fault + _RUN_CLI] if fault else ["-m", "orderstream.cli"]),
                "worker",
                "--index",
                str(index),
                "--web-port",
                str(free_port()),
            ],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill_worker(self) -> None:
        with self._lock:
            self._wanted = None
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop_worker(self) -> None:
        with self._lock:
            self._wanted = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def worker_log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.tmp.glob("worker-*.log"))
        )

    # ---------------------------------------------------------------- produce
    def send(self, topic: str, key: str, record: Any) -> None:
        self.producer.send(
            self.settings.topics(topic), key=key.encode(), value=codec.encode(record)
        )

    def upsert(self, product_id: str, stock: int, price: str = "10.00", **kw: Any) -> None:
        self.send(
            names.INVENTORY_COMMANDS,
            product_id,
            UpsertProduct(
                command_id=f"up-{product_id}-{uuid.uuid4().hex[:6]}",
                product_id=product_id,
                name=product_id,
                price=price,
                stock=stock,
                **kw,  # type: ignore[arg-type]
            ),
        )

    def order(
        self, order_id: str, lines: Iterable[tuple[str, int]], customer_id: str = "c1"
    ) -> None:
        lines = list(lines)
        for line_no, (product_id, quantity) in enumerate(lines):
            self.send(
                names.ORDER_REQUESTS,
                product_id,
                OrderLineRequested(
                    event_id=event_id_for(order_id, line_no, "requested"),
                    order_id=order_id,
                    line_no=line_no,
                    line_count=len(lines),
                    customer_id=customer_id,
                    product_id=product_id,
                    quantity=quantity,
                ),
            )

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    # ------------------------------------------------------------------- read
    def read(self, topic: str, decoder: Any, timeout_s: float = 30.0) -> list[Any]:
        """Everything on ``topic`` up to its current end offsets (decoded)."""
        name = self.settings.topics(topic)
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False
        )
        try:
            parts = [TopicPartition(name, p) for p in range(self.settings.partitions)]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            end = consumer.end_offsets(parts)
            out: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in parts):
                assert time.monotonic() < deadline, f"could not read {name} to its end"
                for records in consumer.poll(timeout_ms=500).values():
                    out += [decoder.decode(m.value) for m in records]
            return out
        finally:
            consumer.close()

    def close(self) -> None:
        self._closed.set()
        self.stop_worker()
        self.producer.close()
        try:
            changelogs = [t for t in self.admin.list_topics() if t.startswith(self.app_id)]
            # KEEP_TOPICS=1 leaves a test's topics in Kafka, to read them after a failure
            if not os.environ.get("KEEP_TOPICS"):
                self.admin.delete_topics(self.topics + changelogs, timeout_ms=30000)
        finally:
            self.admin.close()
