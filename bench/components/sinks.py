"""Benchmark of the sink and the relay (never run in tests).

    .venv/bin/python -m bench.components.sinks --orders 50000 --rate 2000 --seconds 20

Against the running stack, in a scratch database and under its own topic prefix:

1. backlog: ``--orders`` committed orders (``--lines`` each) are produced first, then one
   ``orderstream sink`` and one ``orderstream relay`` (subprocesses, as in production)
   drain them. Rates come from the rows' own timestamps (orders.created_at, outbox.sent_at),
   so process start-up is not counted.
2. steady: ``--rate`` orders/s for ``--seconds``; latency from producing the committed
   event to the row being committed (orders.created_at) and to the shipped event being
   acknowledged by Kafka (outbox.sent_at).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from orderstream.core.settings import REPO_ROOT, Settings
from schemas import codec
from schemas.common import event_id_for
from schemas.orders import OrderCommitted, OrderItem
from schemas.topics import ALL_TOPICS, ORDERS_COMMITTED
from sinks.migrate import upgrade


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    from orderstream.stack import database
    from orderstream.stack.config import StackConfig

    cfg = StackConfig.from_env(os.environ)
    name = f"orderstream_bench_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(settings.database_url)

    with database.superuser(cfg) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{url.username}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with database.superuser(cfg) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def order(order_id: str, lines: int) -> OrderCommitted:
    items = tuple(
        OrderItem(line_no=n, product_id=f"bench-{n}", quantity=1, unit_price=Decimal("9.99"))
        for n in range(lines)
    )
    return OrderCommitted(
        event_id=event_id_for(order_id, "committed"),
        order_id=order_id,
        customer_id="bench",
        items=items,
        total=Decimal("9.99") * lines,
    )


def produce(
    producer: KafkaProducer, topic: str, ids: list[str], lines: int, rate: float | None = None
) -> dict[str, float]:
    sent_at: dict[str, float] = {}
    start = time.time()
    for n, oid in enumerate(ids):
        if rate:
            ahead = start + n / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
        sent_at[oid] = time.time()
        producer.send(topic, key=oid.encode(), value=codec.encode(order(oid, lines)))
    producer.flush(timeout=120)
    return sent_at


def spawn(command: str, settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env()}
    exe = str(Path(sys.executable).parent / "orderstream")
    return subprocess.Popen(
        [exe, command, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for(engine: sa.Engine, sql: str, target: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if int(conn.execute(sa.text(sql)).scalar_one()) >= target:
                return
        time.sleep(0.2)
    raise TimeoutError(f"not reached {target}: {sql}")


def span_rate(engine: sa.Engine, sql: str) -> dict[str, float]:
    with engine.connect() as conn:
        n, first, last = conn.execute(sa.text(sql)).one()
    seconds = (last - first).total_seconds()
    return {
        "rows": n,
        "seconds": round(seconds, 3),
        "per_s": round(n / seconds, 1) if seconds else 0,
    }


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.5) * 1000, 1),
        "p99_ms": round(pick(0.99) * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


@click.command()
@click.option("--orders", default=50_000, show_default=True)
@click.option("--lines", default=2, show_default=True)
@click.option("--rate", default=2000.0, show_default=True, help="Steady phase orders/s.")
@click.option("--seconds", default=20.0, show_default=True, help="Steady phase duration.")
@click.option("--batch-size", default=None, type=int, help="Sink batch size (default: settings).")
@click.option(
    "--relay-poll",
    type=float,
    default=None,
    help="Run the relay without LISTEN/NOTIFY, polling every this many seconds.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None)
def main(
    orders: int,
    lines: int,
    rate: float,
    seconds: float,
    batch_size: int | None,
    relay_poll: float | None,
    out: Path | None,
) -> None:
    base = Settings.from_env()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    logs = REPO_ROOT / ".local" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "orders": orders,
        "lines": lines,
        "partitions": base.partitions,
        "started": datetime.now(UTC).isoformat(),
    }
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(base))
        settings = replace(
            base,
            topic_prefix=prefix,
            database_url=url,
            sink_batch_size=batch_size or base.sink_batch_size,
        )
        result["sink_batch_size"] = settings.sink_batch_size
        upgrade(url)
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        topics = [settings.topics(t) for t in ALL_TOPICS]
        admin.create_topics(
            [NewTopic(t, settings.partitions, 1) for t in topics],
            timeout_ms=30000,
            wait_for_metadata=True,
        )
        stack.callback(admin.close)
        stack.callback(lambda: admin.delete_topics(topics, timeout_ms=30000))
        engine = sa.create_engine(url)
        stack.callback(engine.dispose)
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=10,
            batch_size=256 * 1024,
        )
        stack.callback(producer.close)
        topic = settings.topics(ORDERS_COMMITTED)

        # 1. backlog
        click.echo(f"producing {orders} committed orders to {topic}", err=True)
        produce(producer, topic, [f"b{n}" for n in range(orders)], lines)
        relay_args = (
            [] if relay_poll is None else ["--no-listen", "--poll-interval", str(relay_poll)]
        )
        result["relay"] = "LISTEN/NOTIFY" if relay_poll is None else f"poll every {relay_poll}s"
        procs = [
            spawn("sink", settings, logs / "bench-sink.log"),
            spawn("relay", settings, logs / "bench-relay.log", *relay_args),
        ]
        for proc in procs:
            stack.callback(proc.wait, 30)
            stack.callback(proc.terminate)
        wait_for(engine, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL", orders, 1800)
        result["backlog_sink"] = span_rate(
            engine, "SELECT count(*), min(created_at), max(created_at) FROM orders"
        )
        result["backlog_relay"] = span_rate(
            engine, "SELECT count(*), min(sent_at), max(sent_at) FROM outbox"
        )

        # 2. steady rate
        steady = [f"s{n}" for n in range(int(rate * seconds))]
        click.echo(f"steady: {rate}/s for {seconds}s", err=True)
        produced = produce(producer, topic, steady, lines, rate)
        wait_for(
            engine,
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL",
            orders + len(steady),
            600,
        )
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT o.order_id, extract(epoch FROM o.created_at),"
                    " extract(epoch FROM x.sent_at),"
                    " extract(epoch FROM x.sent_at - x.created_at) FROM orders o"
                    " JOIN outbox x ON x.key = o.order_id WHERE o.order_id LIKE 's%'"
                )
            ).all()
        result["steady_rate_per_s"] = rate
        result["steady_written_latency"] = percentiles(
            [float(w) - produced[o] for o, w, _, _ in rows]
        )
        result["steady_shipped_latency"] = percentiles(
            [float(s) - produced[o] for o, _, s, _ in rows]
        )
        result["steady_outbox_wait"] = percentiles([float(d) for _, _, _, d in rows])
    text = json.dumps(result, indent=2, default=str)
    click.echo(text)
    if out:
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
