"""Faults of the replicated topology under continuous load from retrying storefronts.

Three Kafka nodes with three copies of every topic and ``min.insync.replicas`` 2: losing any
one node — the leader of the hot product's partition, the active controller — or restarting
all three in turn must lose, double and oversell nothing. A worker killed with a standby, and
without one, likewise. Each scenario checks the durable state black-box (PostgreSQL,
``orders.committed``, ``orders.shipped``, the reconciler) and prints what buyers saw: 503s,
the p99 of POST attempts during the fault, and for a worker how long until every partition
decides again. Those figures are reported, never asserted (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from orderstream.client import OrderstreamClient
from orderstream.stack import broker
from schemas import topics
from schemas.partitioning import partition_for
from tests.chaos import checks
from tests.chaos.faults import KILL, Fault, FaultInjector, FaultRecord
from tests.chaos.harness import Load, create_products, drain, programs_running
from tests.chaos.stackctl import LocalStack, send, wait_for
from tests.chaos.storefront import KeyLog, RetryingStorefront, RetryPolicy

RATE = 50.0  # orders offered per second, from before the first fault to after the last
HEAL_TIMEOUT_S = 120.0
NODE_DOWN_S = 12.0  # how long a lost node stays down: longer than fencing it takes (3 s)
DECIDED = frozenset({"committed", "shipped", "rejected", "cancelled"})


@dataclass
class Run:
    """One scenario: its products and stock, what the clients were told, and the faults."""

    stock: dict[str, int]
    prefix: str
    logs: list[KeyLog] = field(default_factory=list)
    not_final: set[str] = field(default_factory=set)
    records: list[FaultRecord] = field(default_factory=list)


def new_run(local: LocalStack, name: str, hot_stock: int = 400) -> Run:
    run_id = uuid.uuid4().hex[:8]
    # HOT, ordered three times as often as each other product, sells out within the run (the
    # gate and the stock decisions under faults) unless given more; the others never do, so
    # that intake shows as 202s throughout
    stock = {f"REPL-{run_id}-HOT": hot_stock, **{f"REPL-{run_id}-{n}": 100_000 for n in "ABC"}}
    create_products(local, stock)
    return Run(stock, f"repl-{name}-{run_id}-")


async def under_load(
    local: LocalStack, run: Run, engine: sa.Engine, faults: Callable[[], Awaitable[None]]
) -> None:
    """Retrying storefronts order the run's products before, during and after ``faults``."""
    settings = local.settings
    products = {p: (3.0 if p.endswith("-HOT") else 1.0) for p in run.stock}
    policy = RetryPolicy(cap_s=8.0, give_up_s=180.0)
    async with RetryingStorefront(settings.ingress_url, settings.storefront_key, policy) as sf:
        load = Load(sf, RATE, products, run.prefix, multi_line_share=0.2, seed=3)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        try:
            await asyncio.sleep(3.0)
            await faults()
            await asyncio.sleep(5.0)
        finally:
            stop.set()
            await running
        run.logs = load.logs
        accepted = {o for log in load.logs for o in log.accepted_ids}
        run.not_final = await drain(sf, engine, accepted, timeout_s=150.0)


def assert_invariants(local: LocalStack, run: Run, engine: sa.Engine) -> None:
    """0 lost, 0 double, 0 oversold, every answer true, one shipped event each, reconcile
    clean."""
    for record in run.records:
        assert record.back is not None, f"{record.fault}: {record.note}"
    orders = checks.stored_orders_at_rest(engine, run.prefix)
    found = [
        *checks.check_keys_and_answers(run.logs, run.not_final, orders),
        checks.check_committed_told(local.settings, run.logs, run.prefix),
        checks.check_oversell(orders, run.stock),
        checks.check_shipped_events(local.settings, orders, timeout_s=60.0),
        checks.check_reconcile(local.settings, list(run.stock), timeout_s=90.0),
    ]
    checks.assert_all_ok(found, f"{len(run.logs)} orders, {len(orders)} rows")


def buyers_saw(run: Run, start: float, end: float) -> str:
    """503s and the p99 of POST attempts sent in [start, end] (monotonic seconds)."""
    answers = [a for log in run.logs for a in log.answers if start <= a.sent <= end]
    if not answers:
        return "no attempts"
    latencies = sorted(a.at - a.sent for a in answers)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    unavailable = sum(a.status == 503 for a in answers)
    return f"{len(answers)} attempts, {unavailable} answered 503, p99 {p99 * 1000:.0f} ms"


def healed(local: LocalStack) -> bool:
    """Every node registered and no partition short of an in-sync copy."""
    try:
        broker.ping(local.settings.kafka_bootstrap, local.cfg.brokers)
        short, _ = broker.under_replicated(local.settings.kafka_bootstrap)
    except Exception:
        return False
    return not short


async def wait_healed(local: LocalStack) -> None:
    assert await asyncio.to_thread(wait_for, lambda: healed(local), HEAL_TIMEOUT_S, 1.0), (
        f"under-replicated partitions {HEAL_TIMEOUT_S:.0f}s after the node came back"
    )


def hot_partition_leader(local: LocalStack, hot: str) -> str:
    settings = local.settings
    topic = settings.topics(topics.ORDER_REQUESTS)
    leader = broker.leaders(settings.kafka_bootstrap, topic)[
        partition_for(hot.encode(), settings.partitions)
    ]
    return local.brokers[leader - 1]


def active_controller(local: LocalStack) -> str:
    leader, _ = broker.quorum(local.cfg, local.settings.kafka_bootstrap)
    assert leader is not None, "no KRaft quorum leader"
    return local.brokers[leader - 1]


@dataclass
class NodeDown:
    program: str
    killed: float  # monotonic
    restarted: float


async def lose_node(local: LocalStack, program: str, down_s: float) -> NodeDown:
    """kill -9 one node's process tree and keep it down for ``down_s`` (supervisord would
    restart it at once), then start it and wait until it answers and every partition has
    its copies in sync again."""
    pid = await asyncio.to_thread(local.running_pid, program)
    assert pid, local.ctl("status", program)
    tree = await asyncio.to_thread(local.fault_pids, program, pid, pause=False)
    send(tree, signal.SIGKILL)
    killed = time.monotonic()
    # supervisord may have restarted it already; a node stopped while starting can take its
    # whole stopwaitsecs (60 s) before supervisord kills it, so wait longer than that
    await asyncio.to_thread(local.ctl, "stop", program, timeout=120.0)
    await asyncio.sleep(max(0.0, killed + down_s - time.monotonic()))
    await asyncio.to_thread(local.ctl, "start", program, timeout=180.0)
    restarted = time.monotonic()
    assert await asyncio.to_thread(wait_for, local.probe(program), HEAL_TIMEOUT_S, 0.5), program
    await wait_healed(local)
    return NodeDown(program, killed, restarted)


def accepted_between(run: Run, product_id: str, start: float, end: float) -> int:
    """Orders of ``product_id`` alone answered 202/201 in [start, end]."""
    return sum(
        1
        for log in run.logs
        if [p for p, _ in log.items] == [product_id]
        for a in log.answers
        if a.status in (201, 202) and start <= a.at <= end
    )


def test_losing_one_broker_the_hot_partitions_leader_then_the_active_controller(
    cluster: LocalStack, cluster_pg: sa.Engine
) -> None:
    """Each node stays down for NODE_DOWN_S: orders for the hot product, whose partition
    the first one led, must be accepted meanwhile (two copies are enough to write)."""
    programs_running(cluster)
    run = new_run(cluster, "loss", hot_stock=100_000)
    hot = next(p for p in run.stock if p.endswith("-HOT"))
    lost: list[NodeDown] = []

    async def faults() -> None:
        choices = (lambda: hot_partition_leader(cluster, hot), lambda: active_controller(cluster))
        for choose in choices:
            program = await asyncio.to_thread(choose)
            lost.append(await lose_node(cluster, program, NODE_DOWN_S))

    asyncio.run(under_load(cluster, run, cluster_pg, faults))
    for down in lost:
        seen = buyers_saw(run, down.killed, down.restarted)
        print(f"kill -9 {down.program}, down {NODE_DOWN_S:.0f} s: {seen}")
    assert_invariants(cluster, run, cluster_pg)
    first = lost[0]
    while_down = accepted_between(run, hot, first.killed, first.restarted)
    assert while_down > 0, f"no order of {hot} accepted while {first.program} was down"


def test_a_rolling_restart_of_every_broker(cluster: LocalStack, cluster_pg: sa.Engine) -> None:
    programs_running(cluster)
    run = new_run(cluster, "roll")
    started: list[tuple[str, float, float]] = []

    async def faults() -> None:
        for program in cluster.brokers:  # as an operator does: one node, then wait for ISR
            began = time.monotonic()
            out = await asyncio.to_thread(cluster.ctl, "restart", program, timeout=180.0)
            assert "started" in out, out
            probe = cluster.probe(program)
            assert await asyncio.to_thread(wait_for, probe, HEAL_TIMEOUT_S, 0.5), program
            await wait_healed(cluster)
            started.append((program, began, time.monotonic()))

    asyncio.run(under_load(cluster, run, cluster_pg, faults))
    for program, began, done in started:
        print(f"restart {program}: {buyers_saw(run, began, done)}")
    assert_invariants(cluster, run, cluster_pg)


def partition_probes(local: LocalStack, name: str) -> dict[int, str]:
    """One product per partition of orders.requests (so that each worker's partitions are
    probed), with stock that never runs out."""
    partitions = local.settings.partitions
    found: dict[int, str] = {}
    n = 0
    run_id = uuid.uuid4().hex[:6]
    while len(found) < partitions:
        product_id = f"REPL-{run_id}-{name}-P{n}"
        found.setdefault(partition_for(product_id.encode(), partitions), product_id)
        n += 1
    create_products(local, {p: 1_000_000 for p in found.values()})
    return found


def until_every_partition_decides(
    local: LocalStack, probes: dict[int, str], since: float, timeout_s: float = 180.0
) -> float:
    """Seconds from ``since`` until an order for each partition's product was decided
    (committed, shipped or rejected): one probe order at a time per partition, a new one
    once the last is decided or has waited 1 s."""
    settings = local.settings
    waiting = dict(probes)
    decided_at: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    with OrderstreamClient(
        settings.ingress_url, settings.storefront_key, settings.admin_key, timeout=10.0
    ) as client:
        placed: dict[int, str] = {}
        while waiting and time.monotonic() < deadline:
            for partition, product_id in list(waiting.items()):
                order_id = placed.get(partition)
                if order_id is not None:
                    shown = client.order(order_id)
                    if shown is not None and shown["status"] in DECIDED:
                        decided_at[partition] = time.monotonic()
                        del waiting[partition]
                        continue
                try:
                    customer = f"probe-{uuid.uuid4().hex[:8]}"
                    placed[partition] = client.post_order(customer, [(product_id, 1)])
                except Exception:  # a 503 while intake recovers: try again next round
                    placed.pop(partition, None)
            time.sleep(0.25)
    assert not waiting, f"partitions {sorted(waiting)} decided nothing for {timeout_s:.0f}s"
    return max(decided_at.values()) - since


def set_standby_replicas(local: LocalStack, replicas: int) -> None:
    """``make up`` with another standby count (the programs restart with it)."""
    env = {**local.environ, "ORDERSTREAM_STANDBY_REPLICAS": str(replicas)}
    command = [str(local.cfg.venv_bin / "orderstream"), "stack", "up"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)


def worker_killed(local: LocalStack, engine: sa.Engine, name: str) -> str:
    programs_running(local)
    run = new_run(local, name)
    probes = partition_probes(local, name)
    until_every_partition_decides(local, probes, time.monotonic())  # all decide before
    injector = FaultInjector(local)
    recovery: list[float] = []

    async def faults() -> None:
        record = await injector.inject(Fault("worker-0", KILL))
        run.records.append(record)
        took = await asyncio.to_thread(until_every_partition_decides, local, probes, record.started)
        recovery.append(took)

    try:
        asyncio.run(under_load(local, run, engine, faults))
    finally:
        injector.close()
    assert_invariants(local, run, engine)
    return f"every partition decided again {recovery[0]:.1f} s after the kill"


def test_a_worker_killed_with_a_standby(cluster: LocalStack, cluster_pg: sa.Engine) -> None:
    assert cluster.settings.standby_replicas == 1
    print(f"kill -9 worker-0, 1 standby: {worker_killed(cluster, cluster_pg, 'standby')}")


def test_a_worker_killed_without_a_standby(cluster: LocalStack, cluster_pg: sa.Engine) -> None:
    set_standby_replicas(cluster, 0)
    try:
        local = LocalStack(local=cluster.cfg.local)
        assert local.settings.standby_replicas == 0
        print(f"kill -9 worker-0, no standby: {worker_killed(local, cluster_pg, 'nostandby')}")
    finally:
        set_standby_replicas(cluster, 1)
