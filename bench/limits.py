"""The raw limits of this machine, measured in the same run: Kafka produce/consume (Kafka's own
perf tools), PostgreSQL COPY rows/s, and a bare Falcon endpoint's req/s under gunicorn."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.exceptions import BenchError
from bench.loadgen import Tick, hammer, run
from bench.processes import gunicorn, wait_until_answers
from orderstream.core.settings import REPO_ROOT

logger = logging.getLogger(__name__)

KAFKA_CLASSPATH = f"{REPO_ROOT}/.local/kafka/libs/*:{REPO_ROOT}/.local/kafka/*"
PRODUCED = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def kafka_tool(tool: str, *args: str, timeout: float) -> str:
    argv = ["java", "-Xmx512m", "-cp", KAFKA_CLASSPATH, f"org.apache.kafka.tools.{tool}", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"{tool} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def parse_producer(output: str) -> float:
    matches = PRODUCED.findall(output)
    if not matches:
        raise BenchError(f"no ProducerPerformance summary in: {output[-300:]}")
    return float(matches[-1][1])


def parse_consumer(output: str) -> float:
    """ConsumerPerformance prints a CSV header and one row; prefer fetch.nMsg.sec (no rebalance)."""
    lines = [line for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if "nMsg.sec" in line:
            header = [h.strip() for h in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            row = dict(zip(header, values, strict=False))
            return float(row.get("fetch.nMsg.sec") or row["nMsg.sec"])
    raise BenchError(f"no ConsumerPerformance summary in: {output[-300:]}")


def kafka_rates(
    bootstrap: str, records: int, record_size: int = 200, partitions: int = 8
) -> dict[str, float]:
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bench.perf.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30000)
        produced = kafka_tool(
            "ProducerPerformance",
            "--topic", topic,
            "--num-records", str(records),
            "--record-size", str(record_size),
            "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "linger.ms=5",
            timeout=180,
        )  # fmt: skip
        consumed = kafka_tool(
            "ConsumerPerformance",
            "--bootstrap-server", bootstrap,
            "--topic", topic,
            "--num-records", str(records),
            "--timeout", "60000",
            "--group", f"{topic}.group",
            timeout=180,
        )  # fmt: skip
        return {
            "kafka_produce_msgs_per_s": round(parse_producer(produced), 1),
            "kafka_consume_msgs_per_s": round(parse_consumer(consumed), 1),
            "kafka_record_bytes": record_size,
        }
    finally:
        try:
            admin.delete_topics([topic], timeout_ms=30000)
        finally:
            admin.close()


def copy_rows_per_s(database_url: str, rows: int) -> float:
    """COPY ``rows`` order-item-like rows into a fresh logged table and commit; rows/s."""
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    table = f"bench_copy_{uuid.uuid4().hex[:8]}"
    buffer = io.StringIO()
    for n in range(rows):
        buffer.write(f"{uuid.UUID(int=n)}\t{n % 5 + 1}\tsku-{n % 10000}\t{n % 3 + 1}\t19.99\n")
    data = buffer.getvalue().encode()
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"CREATE TABLE {table} (order_id text, line_no int, product_id text, "
            "quantity int, unit_price numeric(12,2))"
        )
        conn.commit()
        try:
            start = time.monotonic()
            with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                for offset in range(0, len(data), 1 << 20):
                    copy.write(data[offset : offset + (1 << 20)])
            conn.commit()
            elapsed = time.monotonic() - start
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
    return rows / elapsed


def falcon_bare_rate(
    port: int,
    workers: int,
    threads: int,
    duration_s: float,
    concurrency: int,
    log: Path | None,
    tick: Tick,
) -> tuple[float, float]:
    """req/s, and the load generator's CPU share of one core while it ran."""
    process = gunicorn(
        "falcon_bare", "bench.baselines.bare_app:get_app()", port, {}, workers, threads, log
    ).start()
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process)
        cpu_before = time.process_time()
        ok, _failed, seconds = run(
            hammer(f"http://127.0.0.1:{port}/ping", duration_s, concurrency, tick)
        )
        return ok / seconds, (time.process_time() - cpu_before) / seconds
    finally:
        process.stop()


def check_database(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()
