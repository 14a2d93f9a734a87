"""The chaos run: open-loop orders from retrying storefronts while faults are injected one
program at a time, then black-box checks of the durable state and a summary table.

``run(config)`` needs the local stack up (``make up``). It creates a handful of products
under a fresh run id (stock limited, so most sell out; one never does, so that intake
recovery can be seen as a 202), starts the lag sampler and the load, injects each fault
of ``config.faults`` and lets the stack recover between them, stops the load, waits until
every accepted order is final, and runs the checks of ``tests.chaos.checks``. Every wait
is bounded. ``Report.ok`` is False on any violation.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from orderstream.client import OrderstreamClient
from schemas import topics
from schemas.orders import TERMINAL_STATUSES
from tests.chaos import checks
from tests.chaos.checks import Check
from tests.chaos.faults import KILL, PAUSE, Fault, FaultInjector, FaultRecord
from tests.chaos.lag import GROUP_SESSION_TIMEOUT_S, LagSampler
from tests.chaos.stackctl import LocalStack
from tests.chaos.storefront import (
    ACCEPTED,
    GAVE_UP,
    REFUSED,
    KeyLog,
    RetryingStorefront,
    RetryPolicy,
)

SERVICES = ("postgres", "redis")  # and the Kafka programs (LocalStack.brokers)


def brokers_of(programs: Sequence[str]) -> list[str]:
    """The Kafka programs among ``programs``: ``kafka``, or ``kafka-1`` ... in a cluster."""
    return sorted(p for p in programs if p == "kafka" or p.startswith("kafka-"))


@dataclass(frozen=True)
class ProductPlan:
    """A product of the run: its share of the order lines and its stock as a fraction of
    the units the run is expected to ask of it."""

    name: str
    share: float
    stock_fraction: float


PRODUCTS = (
    ProductPlan("HOT", 0.15, 0.05),
    ProductPlan("A", 0.12, 0.4),
    ProductPlan("B", 0.12, 0.6),
    ProductPlan("C", 0.11, 0.8),
    ProductPlan("D", 0.10, 1.0),
    ProductPlan("BULK", 0.40, 5.0),  # never sells out: intake recovery shows as 202s
)
UNITS_PER_LINE = 1.3  # quantities 1 or 2 (single lines), 1 (multi-line)


@dataclass(frozen=True)
class ChaosConfig:
    name: str
    rate: float  # orders offered per second (open loop)
    expected_s: float  # roughly how long the load runs (sizes the stock)
    warmup_s: float
    tail_s: float  # load after the last fault
    faults: tuple[Fault, ...]
    gap_s: float  # after a fault's recovery, before the next fault
    settle_lag: bool  # between faults, also wait until the requests backlog is worked off
    recover_timeout_s: float
    drain_timeout_s: float
    policy: RetryPolicy
    multi_line_share: float = 0.2
    min_orders: int = 0
    max_in_flight: int = 20_000
    seed: int | None = None


def short_faults(programs: Sequence[str], pause_s: float = 5.0) -> tuple[Fault, ...]:
    """Every program killed once; a broker and the ingress paused once."""
    workers = sorted(p for p in programs if p.startswith("worker-"))
    kafka = brokers_of(programs)
    others = [p for p in programs if p not in (*workers, *kafka, "ingress")]
    return (
        Fault(workers[0], KILL),
        *(Fault(p, KILL) for p in others if p in ("sink", "relay")),
        Fault(kafka[0], PAUSE, pause_s),
        *(Fault(p, KILL) for p in others if p not in ("sink", "relay")),
        Fault("ingress", PAUSE, pause_s),
        Fault("ingress", KILL),
        *(Fault(w, KILL) for w in workers[1:]),
        *(Fault(b, KILL) for b in kafka),
    )


def long_faults(programs: Sequence[str], pause_s: float = 8.0) -> tuple[Fault, ...]:
    """Every program killed, then every program paused; a broker killed three times."""
    workers = sorted(p for p in programs if p.startswith("worker-"))
    kafka = brokers_of(programs)
    rest = [p for p in ("sink", "relay", "ingress", "postgres", "redis") if p in programs]
    others = [p for p in programs if p not in (*workers, *rest, *kafka)]
    kills = [workers[0], "sink", kafka[0], *[p for p in rest if p != "sink"], *others]
    kills += [*workers[1:], *kafka[1:]]
    pauses = [workers[0], "sink", "relay", "ingress", *kafka, "postgres", "redis", *others]
    pauses += workers[1:]
    return (
        *(Fault(p, KILL) for p in kills),
        *(Fault(p, PAUSE, pause_s) for p in pauses if p in programs),
        Fault(kafka[-1], KILL),
        Fault(workers[-1], PAUSE, pause_s),
        Fault(kafka[0], KILL),
    )


def short_config(programs: Sequence[str], rate: float = 100.0) -> ChaosConfig:
    return ChaosConfig(
        name="short",
        rate=rate,
        expected_s=90.0,
        warmup_s=5.0,
        tail_s=8.0,
        faults=short_faults(programs),
        gap_s=1.0,
        settle_lag=False,
        recover_timeout_s=45.0,
        drain_timeout_s=90.0,
        policy=RetryPolicy(cap_s=8.0, give_up_s=150.0),
    )


def long_config(programs: Sequence[str], rate: float = 120.0) -> ChaosConfig:
    return ChaosConfig(
        name="long",
        rate=rate,
        expected_s=600.0,
        warmup_s=10.0,
        tail_s=20.0,
        faults=long_faults(programs),
        gap_s=5.0,
        settle_lag=True,
        recover_timeout_s=90.0,
        drain_timeout_s=180.0,
        policy=RetryPolicy(cap_s=8.0, give_up_s=240.0),
        min_orders=5_000,
    )


@dataclass
class Report:
    run_id: str
    config: ChaosConfig
    logs: list[KeyLog]
    faults: list[FaultRecord]
    checks: list[Check]
    load_s: float
    shed: int
    origin: float  # time.monotonic() when the load started
    lag_samples: int = 0
    lag_failures: int = 0
    total_s: float = 0.0
    not_final: set[str] = field(default_factory=set)  # accepted, never final via the API

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def violations(self) -> list[str]:
        return [f"{c.name}: {f}" for c in self.checks for f in c.failures]

    def intake_recovered(self, record: FaultRecord) -> float | None:
        """Seconds from the fault's start to the first 202/201 answer to a request sent
        after it began (None: no such answer)."""
        first = min(
            (
                a.at
                for log in self.logs
                for a in log.answers
                if a.kind == ACCEPTED and a.sent >= record.started
            ),
            default=None,
        )
        return None if first is None else first - record.started

    def table(self) -> str:
        outcomes = Counter(log.outcome for log in self.logs)
        refusals = Counter(log.refusal for log in self.logs if log.outcome == REFUSED)
        attempts = Counter(
            f"{a.status} {a.kind}" if a.status else a.kind for log in self.logs for a in log.answers
        )
        retried = sum(len(log.answers) > 1 for log in self.logs)
        lines = [
            f"chaos run {self.run_id} ({self.config.name}): {len(self.logs):,} orders in"
            f" {self.load_s:.0f}s of load ({self.config.rate:g}/s offered, {self.shed} shed),"
            f" {self.total_s:.0f}s in all",
            "outcomes: "
            + ", ".join(f"{k or 'none'} {v:,}" for k, v in sorted(outcomes.items()))
            + (f" (refused: {dict(refusals)})" if refusals else ""),
            f"attempts: {sum(attempts.values()):,} ({retried:,} orders retried): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(attempts.items())),
            f"lag samples: {self.lag_samples} ({self.lag_failures} failed while the broker"
            " was away)",
            "",
            f"{'#':>2}  {'fault':<22} {'at':>6} {'back':>7} {'intake':>7}  note",
        ]
        for n, record in enumerate(self.faults, 1):
            back = "-" if record.back is None else f"{record.back - record.started:.1f}s"
            intake = self.intake_recovered(record)
            lines.append(
                f"{n:>2}  {record.fault!s:<22} {record.started - self.origin:>5.0f}s"
                f" {back:>7} {'-' if intake is None else f'{intake:.1f}s':>7}"
                f"  {len(record.pids)} pid(s){'; ' + record.note if record.note else ''}"
            )
        lines += ["", f"{'check':<38} {'result':<6} detail"]
        for check in self.checks:
            result = "ok" if check.ok else f"FAIL {len(check.failures)}"
            lines.append(f"{check.name:<38} {result:<6} {check.note}")
            lines += [f"    {f}" for f in check.failures[:10]]
            if len(check.failures) > 10:
                lines.append(f"    ... and {len(check.failures) - 10} more")
        lines.append("")
        lines.append("RESULT: " + ("ok" if self.ok else f"{len(self.violations)} violation(s)"))
        return "\n".join(lines)


class Load:
    """Open-loop orders: one new order every ``1/rate`` seconds, each placed by its own
    task (a storefront client retrying as ``RetryingStorefront`` does). Every order has a
    customer id of its own under ``customer_prefix``: the run's orders are found in
    PostgreSQL by that prefix, and two rows of one customer are two orders from one key."""

    def __init__(
        self,
        storefront: RetryingStorefront,
        rate: float,
        products: dict[str, float],
        customer_prefix: str,
        *,
        multi_line_share: float = 0.2,
        max_in_flight: int = 20_000,
        seed: int | None = None,
    ) -> None:
        self.storefront = storefront
        self.rate = rate
        self.products = list(products)
        self.weights = list(products.values())
        self.customer_prefix = customer_prefix
        self.multi_line_share = multi_line_share
        self.max_in_flight = max_in_flight
        self.rng = random.Random(seed)
        self.logs: list[KeyLog] = []
        self.shed = 0
        self.started = 0.0
        self.stopped = 0.0

    def _items(self) -> list[tuple[str, int]]:
        if len(self.products) > 1 and self.rng.random() < self.multi_line_share:
            chosen: list[str] = []
            want = min(len(self.products), self.rng.choice((2, 3)))
            while len(chosen) < want:
                product = self.rng.choices(self.products, self.weights)[0]
                if product not in chosen:
                    chosen.append(product)
            return [(p, 1) for p in chosen]
        product = self.rng.choices(self.products, self.weights)[0]
        return [(product, 1 if self.rng.random() < 0.7 else 2)]

    async def run(self, stop: asyncio.Event) -> None:
        """Offer orders until ``stop`` is set, then wait (bounded) for every client."""
        self.started = time.monotonic()
        tasks: set[asyncio.Task[KeyLog]] = set()
        n = 0
        while not stop.is_set():
            delay = self.started + n / self.rate - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            n += 1
            if len(tasks) >= self.max_in_flight:
                self.shed += 1
                continue
            log = self.storefront.new_log(f"{self.customer_prefix}{n}", self._items())
            self.logs.append(log)
            task = asyncio.create_task(self.storefront.place(log))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        self.stopped = time.monotonic()
        policy = self.storefront.policy
        if tasks:
            await asyncio.wait(tasks, timeout=policy.give_up_s + policy.attempt_timeout_s + 10)
        for task in tasks:
            task.cancel()
        for log in self.logs:
            if not log.outcome:
                log.outcome = GAVE_UP


def customer_prefix(run_id: str) -> str:
    return f"chaos-{run_id}-"


def stock_plan(config: ChaosConfig, run_id: str) -> tuple[dict[str, int], dict[str, float]]:
    """product id -> stock, product id -> share of lines, for this run."""
    lines = config.rate * config.expected_s * (1 + config.multi_line_share * 1.5)
    stock, shares = {}, {}
    for plan in PRODUCTS:
        product_id = f"CHAOS-{run_id}-{plan.name}"
        stock[product_id] = max(5, int(lines * plan.share * UNITS_PER_LINE * plan.stock_fraction))
        shares[product_id] = plan.share
    return stock, shares


def create_products(stack: LocalStack, stock: dict[str, int]) -> None:
    settings = stack.settings
    with OrderstreamClient(
        settings.ingress_url, settings.storefront_key, settings.admin_key
    ) as client:
        for product_id, units in stock.items():
            client.put_product(product_id, name=product_id, price="9.99", stock=units)
        for product_id, units in stock.items():
            shown = client.wait_product(product_id, lambda p, u=units: p["available"] == u, 60)
            if shown is None or shown["available"] != units:
                raise RuntimeError(f"{product_id} not shown with {units} units: {shown}")


async def drain(
    storefront: RetryingStorefront, engine: sa.Engine, order_ids: set[str], timeout_s: float
) -> set[str]:
    """Wait (bounded) until every accepted order is final as a storefront sees it: long-poll
    ``GET /v1/orders/{id}?wait=`` for each until it shows a terminal status, then wait for
    the rows (the read model may tell before the sink has written). Returns the orders the
    API never showed final."""
    deadline = time.monotonic() + timeout_s
    gate = asyncio.Semaphore(128)
    not_final: set[str] = set()

    async def follow(order_id: str) -> None:
        async with gate:
            while time.monotonic() < deadline:
                wait_s = max(0.5, min(5.0, deadline - time.monotonic()))
                status = await storefront.order_status(order_id, wait_s)
                if status in TERMINAL_STATUSES:
                    return
                if status is None:
                    await asyncio.sleep(1.0)
            not_final.add(order_id)

    def in_postgres() -> set[str]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT order_id, status FROM orders WHERE order_id = ANY(:ids)"),
                {"ids": list(order_ids)},
            )
            return {r.order_id for r in rows if r.status in TERMINAL_STATUSES}

    await asyncio.gather(*(follow(o) for o in order_ids))
    pending = set(order_ids)
    while pending and time.monotonic() < deadline:
        pending -= await asyncio.to_thread(in_postgres)
        if pending:
            await asyncio.sleep(1.0)
    return not_final


def programs_running(stack: LocalStack) -> list[str]:
    status = stack.status()
    missing = [
        p for p in (*SERVICES, *stack.brokers, "ingress", "sink", "relay") if p not in status
    ]
    if missing or not any(p.startswith("worker-") for p in status):
        raise RuntimeError(f"the stack lacks {missing or 'workers'}: {sorted(status)}")
    down = [s.name for s in status.values() if s.state != "RUNNING"]
    if down:
        raise RuntimeError(f"not RUNNING: {down}; run `make up`")
    return sorted(status)


async def _load_and_faults(
    stack: LocalStack,
    config: ChaosConfig,
    shares: dict[str, float],
    run_id: str,
    sampler: LagSampler,
    engine: sa.Engine,
    say: Callable[[str], None],
) -> tuple[Load, list[FaultRecord], set[str]]:
    settings = stack.settings
    records: list[FaultRecord] = []
    async with RetryingStorefront(
        settings.ingress_url, settings.storefront_key, config.policy
    ) as storefront:
        load = Load(
            storefront,
            config.rate,
            shares,
            customer_prefix(run_id),
            multi_line_share=config.multi_line_share,
            max_in_flight=config.max_in_flight,
            seed=config.seed,
        )
        stop = asyncio.Event()
        load_task = asyncio.create_task(load.run(stop))
        injector = FaultInjector(stack)
        try:
            await asyncio.sleep(config.warmup_s)
            for fault in config.faults:
                record = await injector.inject(fault)
                records.append(record)
                back = "NOT BACK" if record.back is None else f"{record.back - record.started:.1f}s"
                say(f"[{record.started - load.started:5.0f}s] {fault}: back after {back}")
                await _recover(storefront, sampler, config, record)
            await asyncio.sleep(config.tail_s)
            missing = config.min_orders - len(load.logs)
            if missing > 0:  # the long form's floor on the number of orders
                await asyncio.sleep(missing / config.rate + 1.0)
        finally:
            injector.close()
            stop.set()
            await load_task
        say(f"load stopped after {load.stopped - load.started:.0f}s; waiting for final statuses")
        accepted = {o for log in load.logs for o in log.accepted_ids}
        not_final = await drain(storefront, engine, accepted, config.drain_timeout_s)
    return load, records, not_final


async def _recover(
    storefront: RetryingStorefront, sampler: LagSampler, config: ChaosConfig, record: FaultRecord
) -> None:
    """Between faults: intake works again (a request sent after the program was back got
    202) and, for the long form, the requests backlog is down to a few seconds of load."""
    if record.back is None:
        return
    back = record.back
    deadline = time.monotonic() + config.recover_timeout_s
    settled_lag = int(config.rate * 3)
    while time.monotonic() < deadline:
        intake = storefront.last_accepted_sent >= back
        latest = sampler.latest()
        lag_ok = not config.settle_lag or (
            latest is not None and latest.at > back and latest.lag <= settled_lag
        )
        if intake and lag_ok:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(config.gap_s)


def run(config: ChaosConfig, say: Callable[[str], None] = print) -> Report:
    """One chaos run against the local stack (``make up``); see the module docstring."""
    begun = time.monotonic()
    stack = LocalStack()
    settings = stack.settings
    programs_running(stack)
    run_id = uuid.uuid4().hex[:8]
    stock, shares = stock_plan(config, run_id)
    create_products(stack, stock)
    say(
        f"chaos run {run_id} ({config.name}): {len(config.faults)} faults,"
        f" {config.rate:g} orders/s; stock {stock}"
    )
    sampler = LagSampler(
        settings.kafka_bootstrap,
        settings.app_id,
        settings.topics(topics.ORDER_REQUESTS),
        settings.partitions,
    )
    engine = sa.create_engine(settings.database_url, pool_pre_ping=True)
    sampler.start()
    try:
        load, records, not_final = asyncio.run(
            _load_and_faults(stack, config, shares, run_id, sampler, engine, say)
        )
    finally:
        sampler.stop()
    try:
        say("checking")
        report = Report(
            run_id=run_id,
            config=config,
            logs=load.logs,
            faults=records,
            checks=[],
            load_s=load.stopped - load.started,
            shed=load.shed,
            origin=load.started,
            lag_samples=len(sampler.samples),
            lag_failures=sampler.failures,
            not_final=not_final,
        )
        report.checks = verify(stack, report, engine, stock, sampler)
    finally:
        engine.dispose()
    report.total_s = time.monotonic() - begun
    return report


def verify(
    stack: LocalStack,
    report: Report,
    engine: sa.Engine,
    stock: dict[str, int],
    sampler: LagSampler,
) -> list[Check]:
    """Every check of the run, from the clients' answers and the durable state."""
    settings = stack.settings
    logs = report.logs
    orders = checks.stored_orders_at_rest(engine, customer_prefix(report.run_id))
    windows = [
        (r.started, (r.back if r.back is not None else time.monotonic()) + GROUP_SESSION_TIMEOUT_S)
        for r in report.faults
    ]
    not_back = Check("every program came back")
    not_back.failures = [f"{r.fault}: {r.note}" for r in report.faults if r.back is None]
    return [
        not_back,
        *checks.check_answers(logs),
        checks.check_final_through_api(report.not_final, orders),
        checks.check_one_order_per_key(logs),
        checks.check_one_order_per_key_stored(logs, orders),
        checks.check_nothing_lost(logs, orders),
        checks.check_told(logs, orders),
        checks.check_committed_told(settings, logs, customer_prefix(report.run_id)),
        checks.check_oversell(orders, stock),
        checks.check_shipped_events(settings, orders, timeout_s=60.0),
        checks.check_reconcile(settings, sorted(stock), timeout_s=60.0),
        checks.check_stall(sampler.samples, windows, report.origin),
    ]


def with_rate(config: ChaosConfig, rate: float | None) -> ChaosConfig:
    return config if rate is None else replace(config, rate=rate)
