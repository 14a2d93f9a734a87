"""Benchmark of the running ingress (never run by tests): ``python -m bench.components.ingress``.

Load generators: ``wrk`` (C, one thread; apt ``wrk``) for the closed-loop throughput runs,
and an open-loop asyncio/aiohttp client for the fixed-rate latency run (latency measured
from each request's scheduled send time, so a stall is not hidden). 500 long-pollers are
idle aiohttp connections in a separate process.

Runs, in order: bare Falcon endpoint (``/healthz``), POST /v1/orders at fixed concurrency,
POST /v1/orders at a fixed rate, then POST /v1/orders again with 500 long-pollers.
With ``--spawn`` it starts its own gunicorn (``ingress/gunicorn_conf.py``) on
``--port`` (default 18090) with topic/key prefix ``bench.`` (the topics are created here)
so the shared pipeline does not consume the orders; otherwise it targets ``--url``.

Against the local stack, each run of POSTs starts once the pipeline has consumed what the
runs before it posted (``settle``: every worker's and the sink's partition lag reads 0), so a
run does not compete with the previous run's backlog; the seconds waited are reported as
``settled_s_before_*``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from orderstream.core.settings import REPO_ROOT, Settings
from schemas.topics import ALL_TOPICS

WRK_POST = """
local counter = 0
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = '{"customer_id":"bench-' .. (counter % 997) .. '","items":[{"product_id":"bench-'
    .. math.random(1, 200) .. '","quantity":1}]}'
  return wrk.format("POST", "/v1/orders", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer __KEY__", ["Idempotency-Key"] = run .. "-" .. counter}, body)
end
"""
WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format('\\nRESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def server_pids(url: str) -> list[int]:
    """The gunicorn processes (master and workers) bound to ``url``'s port, from /proc."""
    port = url.rsplit(":", 1)[-1].split("/", 1)[0]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"gunicorn" in cmdline and f":{port}".encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def pipeline_lag(urls: list[str]) -> int | None:
    """Records the pipeline has not consumed yet: the sum of every ``*_partition_lag`` gauge
    at ``urls`` (the workers' and the sink's /metrics). None when one does not answer."""
    total = 0
    for url in urls:
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("orderstream_") and "_partition_lag{" in name:
                total += int(float(value))
    return total


def pipeline_metrics_urls() -> list[str]:
    """The /metrics of the local stack's workers and sink (``orderstream.stack``'s ports)."""
    from orderstream.stack.config import StackConfig

    cfg = StackConfig.from_env()
    ports = [cfg.worker_web_port + n for n in range(cfg.workers)] + [cfg.sink_metrics_port]
    return [f"http://127.0.0.1:{port}/metrics" for port in ports]


def settle(urls: list[str], timeout_s: float) -> float:
    """Wait until the pipeline has decided, stored and shipped what earlier runs posted, so
    every run starts from the same idle stack instead of competing with the last run's
    backlog (Kafka keeps what intake outran). Returns the seconds waited."""
    start = time.monotonic()
    zero_reads = 0
    while zero_reads < 2:  # twice in a row: a commit interval apart from a stale zero
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(
                f"the pipeline still lags (or its /metrics do not answer: {', '.join(urls)}) "
                f"after {timeout_s:.0f} s; --settle-timeout 0 runs without waiting"
            )
        lag = pipeline_lag(urls)
        zero_reads = zero_reads + 1 if lag == 0 else 0
        time.sleep(1.0)
    return round(time.monotonic() - start, 1)


def wrk(url: str, script: str, *, connections: int, seconds: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + WRK_DONE)
    pids = server_pids(url)
    ticks = cpu_ticks(pids)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_s = (cpu_ticks(pids) - ticks) / os.sysconf("SC_CLK_TCK")
    os.unlink(f.name)
    result = json.loads(out.split("RESULT ", 1)[1])
    secs = result["duration_us"] / 1e6
    ok = result["requests"] - result["non2xx"] - result["errors"]
    return {
        "ok_per_s": round(ok / secs),
        "requests": result["requests"],
        "non2xx": result["non2xx"],
        "errors": result["errors"],
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        # CPU of the server's processes (all gunicorn workers) per request answered 2xx,
        # including whatever else they served meanwhile (e.g. long-polls)
        "server_cores": round(cpu_s / secs, 2),
        "server_cpu_ms_per_ok": round(cpu_s * 1000 / max(1, ok), 3),
    }


async def fixed_rate(url: str, key: str, rate: int, seconds: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    failures = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(i: int, scheduled: float) -> None:
            nonlocal failures
            body = json.dumps(
                {
                    "customer_id": f"r{i % 997}",
                    "items": [{"product_id": f"bench-{i % 200}", "quantity": 1}],
                }
            )
            try:
                async with session.post(
                    f"{url}/v1/orders",
                    data=body,
                    headers={**headers, "Idempotency-Key": f"fr-{scheduled}-{i}"},
                ) as r:
                    await r.read()
                    if r.status != 202:
                        failures += 1
            except Exception:
                failures += 1
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter() + 0.2
        tasks = []
        for i in range(rate * seconds):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
    q = statistics.quantiles(latencies, n=100)
    return {
        "rate": rate,
        "sent": len(latencies),
        "failures": failures,
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


async def long_pollers(
    url: str, key: str, order_ids: list[str], wait_s: int, seconds: float
) -> dict[str, int]:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"}
    stop = time.monotonic() + seconds
    counts = {"gets": 0, "terminal": 0, "failures": 0}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=wait_s + 30)
    ) as session:

        async def poll(order_id: str) -> None:
            while time.monotonic() < stop:
                try:
                    async with session.get(
                        f"{url}/v1/orders/{order_id}?wait={wait_s}", headers=headers
                    ) as r:
                        body = await r.read()
                    counts["gets"] += 1
                    if json.loads(body).get("status") in ("shipped", "rejected", "cancelled"):
                        # A real client stops here; the bench keeps polling (a GET that
                        # returns at once), which is a read load, not a parked long-poll.
                        counts["terminal"] += 1
                except Exception:
                    counts["failures"] += 1
                    await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(poll(o)) for o in order_ids]
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts


async def follow(
    url: str, key: str, redis_url: str, namespace: str, clients: int, seconds: float
) -> dict[str, Any]:
    """Clients that follow their order to the end, as a storefront does: GET ?wait=10 while
    ``accepted`` (the bench then writes ``committed``), GET ?wait=10 (-> ``shipped``), GET.
    Orders live only in the read model (never published); the bench writes their statuses
    with the read model's own script ~0.1 s after each GET is sent. Server CPU per followed
    order = 3 GETs, 2 wake-ups (plus subscribe work)."""
    import uuid

    import aiohttp
    import redis.asyncio as aredis

    from orderstream.core.readmodel import SET_STATUS_LUA, Keys, status_args

    keys = Keys(namespace)
    r = aredis.from_url(redis_url)
    headers = {"Authorization": f"Bearer {key}"}
    done = late = 0
    created: list[str] = []
    stop = time.monotonic() + seconds

    async def set_status(order_id: str, status: str, fields: dict[str, Any]) -> None:
        channel = keys.order_channel(order_id)
        args = status_args(status, fields)
        await r.eval(SET_STATUS_LUA, 2, keys.order(order_id), channel, *args)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def get(order_id: str, wait: int) -> str:
            target = f"{url}/v1/orders/{order_id}?wait={wait}"
            async with session.get(target, headers=headers) as resp:
                return str(json.loads(await resp.read())["status"])

        async def client() -> None:
            nonlocal done, late
            while time.monotonic() < stop:
                order_id = uuid.uuid4().hex
                created.append(order_id)
                items = [{"product_id": "p", "quantity": 1}]
                await set_status(order_id, "accepted", {"customer_id": "f", "items": items})
                await r.expire(keys.order(order_id), 600)
                for new in ("committed", "shipped"):
                    poll = asyncio.create_task(get(order_id, 10))
                    await asyncio.sleep(0.1)
                    started = time.monotonic()
                    await set_status(order_id, new, {})
                    await poll
                    if time.monotonic() - started > 5:
                        late += 1  # the change came before the GET's first read: it waited on
                await get(order_id, 10)
                done += 1

        pids = server_pids(url)
        ticks = cpu_ticks(pids)
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.monotonic() - started
        cpu_s = (cpu_ticks(pids) - ticks) / os.sysconf("SC_CLK_TCK")
    for i in range(0, len(created), 500):
        await r.delete(*(keys.order(o) for o in created[i : i + 500]))
    await r.aclose()
    return {
        "clients": clients,
        "followed_per_s": round(done / wall),
        "late_wakeups": late,
        "server_cores": round(cpu_s / wall, 2),
        "server_cpu_ms_per_followed": round(cpu_s * 1000 / max(1, done), 3),
    }


def post_order(url: str, key: str, i: int) -> str:
    body = json.dumps(
        {"customer_id": "poller", "items": [{"product_id": f"bench-{i}", "quantity": 1}]}
    ).encode()
    req = urllib.request.Request(
        f"{url}/v1/orders",
        body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.load(r)["order_id"])


def parked_orders(redis_url: str, namespace: str, count: int, ttl_s: int) -> list[str]:
    """``count`` orders written to the read model as ``accepted`` and never published: no
    pipeline decides them, so a long-poll on one waits its full ``wait`` (the client a
    flash sale keeps waiting). Removed by ``drop_orders``; the TTL is a safety net."""
    import uuid

    import redis

    from orderstream.core.readmodel import SET_STATUS_LUA, Keys, status_args

    keys = Keys(namespace)
    client = redis.Redis.from_url(redis_url)
    ids = [uuid.uuid4().hex for _ in range(count)]
    pipe = client.pipeline(transaction=False)
    for order_id in ids:
        fields = {"customer_id": "bench-poller", "items": [{"product_id": "p", "quantity": 1}]}
        args = status_args("accepted", fields)
        pipe.eval(SET_STATUS_LUA, 2, keys.order(order_id), keys.order_channel(order_id), *args)
        pipe.expire(keys.order(order_id), ttl_s)
    pipe.execute()
    client.close()
    return ids


def drop_orders(redis_url: str, namespace: str, ids: list[str]) -> None:
    import redis

    from orderstream.core.readmodel import Keys

    keys = Keys(namespace)
    client = redis.Redis.from_url(redis_url)
    if ids:
        client.delete(*(keys.order(i) for i in ids))
    client.close()


def suite(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    post = WRK_POST.replace("__KEY__", key)
    results: dict[str, Any] = {}
    only = set(args.only.split(","))
    if "healthz" in only:
        results["bare_healthz"] = wrk(
            f"{url}/healthz", "", connections=args.connections, seconds=args.seconds
        )
    if "orders" in only or "pollers" in only:
        results["settled_s_before_orders"] = args.settle()
        results["orders"] = wrk(
            f"{url}/v1/orders", post, connections=args.connections, seconds=args.seconds
        )
    if "rate" in only:
        results["settled_s_before_rate"] = args.settle()
        results["orders_fixed_rate"] = asyncio.run(fixed_rate(url, key, args.rate, args.seconds))
    if "follow" in only:
        results["follow"] = asyncio.run(
            follow(url, key, args.redis_url, args.namespace, 50, args.seconds)
        )
    if "pollers" not in only:
        return results
    results["settled_s_before_pollers"] = args.settle()
    if args.poll_orders == "placed":
        # through the API: against the whole stack these are decided within milliseconds,
        # and a poller of a decided order gets its answer at once and asks again
        order_ids = [post_order(url, key, i) for i in range(args.pollers)]
        parked: list[str] = []
    else:
        parked = order_ids = parked_orders(
            args.redis_url, args.namespace, args.pollers, args.seconds + 120
        )
    poller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.components.ingress",
            "_pollers",
            url,
            key,
            str(args.seconds + 6),
            *order_ids,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(5)  # let every poller connect and park
        results["orders_with_pollers"] = wrk(
            f"{url}/v1/orders", post, connections=args.connections, seconds=args.seconds
        )
        out, _ = poller.communicate(timeout=60)
        for line in out.splitlines():
            if line.startswith("POLLS "):
                # gets > pollers means they did not stay parked (e.g. their orders were
                # decided by the pipeline: a terminal order's GET returns at once)
                results["pollers"] = json.loads(line[6:])
    finally:
        if poller.poll() is None:
            poller.send_signal(signal.SIGTERM)
            poller.wait(timeout=30)
        drop_orders(args.redis_url, args.namespace, parked)
    results["pollers_ratio"] = round(
        results["orders_with_pollers"]["ok_per_s"] / max(1, results["orders"]["ok_per_s"]), 3
    )
    return results


def spawn(port: int, settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ORDERSTREAM_TOPIC_PREFIX": "bench.",
        "PROMETHEUS_MULTIPROC_DIR": str(REPO_ROOT / ".local" / f"bench-metrics-{port}"),
    }
    log = open(REPO_ROOT / ".local" / "bench-ingress.log", "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "ingress/gunicorn_conf.py",
            "ingress.app:get_app()",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not start (see .local/bench-ingress.log)")


def ensure_bench_topics(settings: Settings) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(f"bench.{t}", settings.partitions, 1)
            for t in ALL_TOPICS
            if f"bench.{t}" not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_pollers":
        url, key, seconds, *ids = argv[1:]
        counts = asyncio.run(long_pollers(url, key, ids, 20, float(seconds)))
        print("POLLS " + json.dumps(counts), flush=True)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.components.ingress")
    parser.add_argument("--url", help="a running ingress (default: INGRESS_URL)")
    parser.add_argument(
        "--spawn",
        action="store_true",
        help="start and measure an ingress of its own (port --port, topic prefix bench.)",
    )
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=500)
    parser.add_argument(
        "--only",
        default="healthz,orders,rate,pollers",
        help="comma-separated runs (default: healthz,orders,rate,pollers): healthz, orders, "
        "rate, pollers, follow (50 clients each following an order: 3 GETs, 2 wake-ups)",
    )
    parser.add_argument(
        "--poll-orders",
        choices=("parked", "placed"),
        default="parked",
        help="what the long-pollers wait on: 'parked' (default) orders written to the read "
        "model as accepted and never published, so every poller waits; 'placed' orders "
        "POSTed through the API (the whole stack decides them at once, so the pollers turn "
        "into a loop of GETs answered at once)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=300.0,
        help="before each run of POSTs, wait at most this long for the stack's pipeline to "
        "consume the backlog of earlier runs (0: do not wait)",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    lag_urls = pipeline_metrics_urls()
    args.settle = (
        (lambda: settle(lag_urls, args.settle_timeout))
        if args.settle_timeout > 0 and not args.spawn
        else (lambda: 0.0)
    )
    args.redis_url = settings.redis_url
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "seconds": args.seconds,
    }
    if args.spawn:
        ensure_bench_topics(settings)
        args.namespace = "bench."
        proc = spawn(args.port, settings)
        try:
            report["spawned"] = suite(
                f"http://127.0.0.1:{args.port}", settings.storefront_key, args
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    else:
        args.namespace = settings.topic_prefix
        report["target"] = suite(args.url or settings.ingress_url, settings.storefront_key, args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
