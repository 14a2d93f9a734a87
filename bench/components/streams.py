"""``python -m bench.components.streams``: order lines decided per second by ONE worker, here.

Scenarios: one hot product (half the lines get stock) and lines spread over 10,000
products; plus, in the same run, the same broker's raw aiokafka consume->produce rate
and the Faust floor: a worker with the same options whose one agent only forwards each
line (``bench.components.floor``), the most any Faust agent of this shape does here.
Method per scenario: topics under a fresh prefix; the catalog is applied by a worker
which is then stopped; all lines are produced; a worker is started on the backlog; the
rate is (lines - 1) / (last - first decision timestamp), a decision being the order's
``OrderCommitted``/``OrderRejected`` (the lines are single-line orders, decided in
reserve_stock). Never run from tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.components.floor import floor_output
from orderstream.core.settings import Settings
from schemas import codec
from schemas import topics as names
from schemas.inventory import UpsertProduct
from schemas.orders import OrderLineRequested
from streams.tables import changelog_topic

logger = logging.getLogger(__name__)


@dataclass
class Scenario:
    name: str
    products: int
    lines: int
    stock_per_product: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spread_lines(count: int) -> list[tuple[str, bytes]]:
    """One line request, keyed over 10,000 products (all partitions)."""
    payload = codec.encode(
        OrderLineRequested(
            event_id="e",
            order_id="o",
            line_no=0,
            line_count=1,
            customer_id="c",
            product_id="P",
            quantity=1,
        )
    )
    return [(f"P{i % 10000}", payload) for i in range(count)]


class Bench:
    def __init__(
        self,
        base: Settings,
        partitions: int,
        workdir: Path,
        profile: bool = False,
        profile_s: float = 12,
        profile_delay_s: float = 0,
    ) -> None:
        self.profile = profile
        self.profile_s = profile_s
        self.profile_delay_s = profile_delay_s
        self.base = base
        self.partitions = partitions
        self.workdir = workdir

    def settings_for(self, prefix: str) -> Settings:
        return Settings(
            kafka_bootstrap=self.base.kafka_bootstrap,
            redis_url=self.base.redis_url,
            partitions=self.partitions,
            topic_prefix=prefix,
            app_id=f"{prefix}bench",
            data_dir=str(self.workdir / prefix),
            hold_time_s=60,
        )

    async def create_topics(self, settings: Settings, extra: tuple[str, ...] = ()) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            wanted = [*settings.topics.all(), *extra]
            await admin.create_topics([NewTopic(t, self.partitions, 1) for t in wanted])
        finally:
            await admin.close()
        await asyncio.sleep(2)  # let leaders settle

    async def delete_topics(self, prefix: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.base.kafka_bootstrap)
        await admin.start()
        try:
            found = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if found:
                await admin.delete_topics(found)
        finally:
            await admin.close()

    def start_worker(
        self, settings: Settings, log: Path, profile: str | None = None, floor: bool = False
    ) -> subprocess.Popen[bytes]:
        """A stock-decision worker, or with ``floor`` the forward-only one
        (bench.components.floor)."""
        env = {**os.environ, **settings.to_env()}
        port = str(_free_port())
        cmd = (
            [sys.executable, "-m", "bench.components.floor", "--web-port", port]
            if floor
            else [
                sys.executable,
                "-m",
                "orderstream.cli",
                "--log-level",
                "WARNING",
                "worker",
                "--index",
                "0",
                "--web-port",
                port,
            ]
        )
        proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        spy = shutil.which("py-spy") or os.environ.get("PY_SPY")
        if profile and self.profile and spy:  # sample the measured worker (folded stacks)
            record = [
                spy,
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                str(round(self.profile_s)),
                "--format",
                "raw",
                "-o",
                profile,
                "--nonblocking",
            ]
            # skip the worker's start-up (imports, rebalance) when asked to
            delay = f"sleep {self.profile_delay_s}; " if self.profile_delay_s else ""
            subprocess.Popen(
                ["sh", "-c", delay + 'exec "$@"', "py-spy", *record],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return proc

    async def end_offsets(self, topic: str) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.base.kafka_bootstrap)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(self.partitions)]
            ends = await consumer.end_offsets(parts)
            return sum(ends.values())
        finally:
            await consumer.stop()

    async def wait_offsets(
        self, topic: str | list[str], count: int, limit_s: float, pid: int | None = None
    ) -> dict[str, float]:
        """Wait until ``topic`` (or the topics together) holds ``count`` messages.

        With ``pid``, sample that worker's CPU meanwhile and return its CPU per message and
        the cores it used (CPU over wall time) between the first poll that saw messages and
        the last: start-up (imports, rebalance) is left out."""
        topics = [topic] if isinstance(topic, str) else topic
        worker = psutil.Process(pid) if pid is not None else None
        deadline = time.monotonic() + limit_s
        start: tuple[int, float, float] | None = None  # messages, cpu s, wall s
        while True:
            seen = sum([await self.end_offsets(t) for t in topics])
            if worker is not None:
                times = worker.cpu_times()
                sample = (seen, times.user + times.system, time.monotonic())
                if start is None and seen > 0:
                    start = sample
            if seen >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topics} did not reach {count} messages in {limit_s}s")
            if worker is not None and worker.status() == psutil.STATUS_ZOMBIE:
                raise RuntimeError(f"worker {pid} exited; see its log")
            await asyncio.sleep(0.5)
        if start is None or sample[0] == start[0]:
            return {}
        lines, cpu_s, wall_s = (sample[i] - start[i] for i in range(3))
        return {
            "worker_cpu_ms_per_line": round(1000 * cpu_s / lines, 4),
            "worker_cores": round(cpu_s / max(wall_s, 1e-6), 2),
        }

    async def produce(self, settings: Settings, topic: str, items: list[tuple[str, bytes]]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            linger_ms=10,
            max_batch_size=512 * 1024,
            acks="all",
        )
        await producer.start()
        try:
            name = settings.topics(topic)
            for start in range(0, len(items), 5000):
                futures = [
                    await producer.send(name, key=k.encode(), value=v)
                    for k, v in items[start : start + 5000]
                ]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def run_scenario(self, scenario: Scenario) -> dict[str, object]:
        prefix = f"b{uuid.uuid4().hex[:5]}."
        settings = self.settings_for(prefix)
        log = self.workdir / f"{prefix}worker.log"
        await self.create_topics(settings)
        try:
            products = [f"{scenario.name.upper()}-{n}" for n in range(scenario.products)]
            catalog = [
                (
                    p,
                    codec.encode(
                        UpsertProduct(
                            command_id=f"bench-{p}",
                            product_id=p,
                            name=p,
                            price=Decimal("9.99"),
                            stock=scenario.stock_per_product,
                        )
                    ),
                )
                for p in products
            ]
            await self.produce(settings, names.INVENTORY_COMMANDS, catalog)
            worker = self.start_worker(settings, log)
            try:
                await self.wait_offsets(changelog_topic(settings), len(products), 300)
                await asyncio.sleep(3)  # let the worker commit its offsets
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            rng = random.Random(7)
            lines = []
            for i in range(scenario.lines):
                p = products[0] if len(products) == 1 else rng.choice(products)
                request = OrderLineRequested(
                    event_id=f"e{i}",
                    order_id=f"{prefix}o{i}",
                    line_no=0,
                    line_count=1,
                    customer_id=f"c{i}",
                    product_id=p,
                    quantity=1,
                )
                lines.append((p, codec.encode(request)))
            await self.produce(settings, names.ORDER_REQUESTS, lines)
            profile = str(self.workdir / f"{scenario.name}.folded")
            worker = self.start_worker(settings, log, profile)
            try:
                # single-line orders are decided in reserve_stock: one decision per line
                decisions = [
                    settings.topics(names.ORDERS_COMMITTED),
                    settings.topics(names.ORDERS_REJECTED),
                ]
                usage = await self.wait_offsets(decisions, scenario.lines, 900, worker.pid)
                first, last, reserved = await self.output_window(decisions)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            rate = (scenario.lines - 1) / max(last - first, 1e-6)
            return {
                "scenario": scenario.name,
                "lines": scenario.lines,
                "products": scenario.products,
                "reserved": reserved,
                "seconds": round(last - first, 2),
                "lines_per_s": round(rate),
                **usage,
            }
        finally:
            await self.delete_topics(prefix)

    async def output_window(self, topics: list[str]) -> tuple[float, float, int]:
        """First and last record timestamps over ``topics``, and the orders committed."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.base.kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        first, last, reserved = float("inf"), 0.0, 0
        try:
            parts = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
                for records in batch.values():
                    for m in records:
                        first, last = min(first, m.timestamp / 1000), max(last, m.timestamp / 1000)
                        reserved += b'"order_committed"' in m.value
        finally:
            await consumer.stop()
        return first, last, reserved

    async def floor_rate(self, lines: int) -> dict[str, object]:
        """The forward-only Faust worker (bench.components.floor) on the raw scenario's lines."""
        prefix = f"b{uuid.uuid4().hex[:5]}."
        settings = self.settings_for(prefix)
        out = floor_output(settings)
        await self.create_topics(settings, extra=(out,))
        try:
            await self.produce(settings, names.ORDER_REQUESTS, _spread_lines(lines))
            log, profile = self.workdir / f"{prefix}floor.log", str(self.workdir / "floor.folded")
            worker = self.start_worker(settings, log, profile, floor=True)
            try:
                usage = await self.wait_offsets(out, lines, 600, worker.pid)
                first, last, _ = await self.output_window([out])
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            return {
                "scenario": "faust floor (forward only)",
                "messages": lines,
                "seconds": round(last - first, 2),
                "messages_per_s": round((lines - 1) / max(last - first, 1e-6)),
                **usage,
            }
        finally:
            await self.delete_topics(prefix)

    async def raw_rate(self, lines: int) -> dict[str, object]:
        """aiokafka consume -> produce of the same kind of messages, no processing."""
        prefix = f"b{uuid.uuid4().hex[:5]}."
        settings = self.settings_for(prefix)
        out = f"{prefix}raw.out"
        await self.create_topics(settings, extra=(out,))
        try:
            await self.produce(settings, names.ORDER_REQUESTS, _spread_lines(lines))
            consumer = AIOKafkaConsumer(
                settings.topics(names.ORDER_REQUESTS),
                bootstrap_servers=settings.kafka_bootstrap,
                group_id=f"{prefix}raw",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                max_poll_records=2000,
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                linger_ms=5,
                acks="all",
                max_batch_size=256 * 1024,
            )
            await consumer.start()
            await producer.start()
            seen, started = 0, 0.0
            try:
                while seen < lines:
                    batch = await consumer.getmany(timeout_ms=1000)
                    if batch and not started:
                        started = time.monotonic()
                    futures = [
                        await producer.send(out, key=m.key, value=m.value)
                        for records in batch.values()
                        for m in records
                    ]
                    await asyncio.gather(*futures)
                    await consumer.commit()
                    seen += len(futures)
                elapsed = time.monotonic() - started
            finally:
                await consumer.stop()
                await producer.stop()
            return {
                "scenario": "raw aiokafka consume->produce",
                "messages": lines,
                "seconds": round(elapsed, 2),
                "messages_per_s": round(lines / elapsed),
            }
        finally:
            await self.delete_topics(prefix)


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    base = Settings.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    bench = Bench(
        base,
        args.partitions,
        workdir,
        profile=args.profile,
        profile_s=args.profile_seconds,
        profile_delay_s=args.profile_delay,
    )
    results = [await bench.raw_rate(args.lines)] if "raw" in args.only else []
    if "floor" in args.only:
        results.append(await bench.floor_rate(args.lines))
    if "hot" in args.only:
        results.append(
            await bench.run_scenario(
                Scenario("hot", products=1, lines=args.lines, stock_per_product=args.lines // 2)
            )
        )
    if "spread" in args.only:
        results.append(
            await bench.run_scenario(
                Scenario("spread", products=args.products, lines=args.lines, stock_per_product=1000)
            )
        )
    if "raw" in args.only:
        raw = float(results[0]["messages_per_s"])  # type: ignore[arg-type]
        for r in results[1:]:
            rate = r.get("lines_per_s", r.get("messages_per_s"))
            r["share_of_raw"] = round(float(rate) / raw, 2)  # type: ignore[arg-type]
    print(f"worker logs: {workdir}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=60_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the measured worker ($PY_SPY or PATH)"
    )
    parser.add_argument("--profile-seconds", type=float, default=12)
    parser.add_argument("--profile-delay", type=float, default=0, help="skip start-up")
    parser.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        default={"raw", "floor", "hot", "spread"},
        help="comma-separated subset of raw,floor,hot,spread",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for result in asyncio.run(main_async(args)):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
