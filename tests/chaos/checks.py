"""Black-box checks after a run: what the clients were told against what PostgreSQL holds,
what ``orders.shipped`` carries, the reconciler, and the consumer group's progress.

Each check returns a ``Check`` with one line per violation. The run's orders are selected
in PostgreSQL by their customer ids (``chaos-<run id>-...``), so orders nobody was told of
are found too, not only those the clients know.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from orderstream.core.settings import Settings
from orderstream.reconcile import Reconciler
from orderstream.topicread import read_to_end
from schemas import topics
from schemas.orders import TERMINAL_STATUSES
from tests.chaos.lag import Sample, longest_stall
from tests.chaos.storefront import GAVE_UP, UNEXPECTED, KeyLog

# A partition of orders.requests with waiting records may make no progress this long
# outside the fault windows. The stall watchdog (DESIGN.md) only acts after 45 s; this is
# a generous bound on an outage, not a latency goal.
STALL_THRESHOLD_S = 15.0

# Orders that may exist though no client was told of them: decided without holding stock.
STOCKLESS_STATUSES = frozenset({"cancelled", "rejected"})


@dataclass
class Check:
    name: str
    failures: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class StoredOrder:
    status: str
    customer_id: str
    items: tuple[tuple[str, int], ...]


def stored_orders(engine: sa.Engine, customer_prefix: str) -> dict[str, StoredOrder]:
    """Every order row (with its items) whose customer id starts with ``customer_prefix``."""
    query = sa.text(
        "SELECT o.order_id, o.status, o.customer_id, i.product_id, i.quantity"
        " FROM orders o LEFT JOIN order_items i USING (order_id)"
        " WHERE o.customer_id LIKE :prefix ORDER BY o.order_id, i.line_no"
    )
    rows: dict[str, tuple[str, str, list[tuple[str, int]]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query, {"prefix": customer_prefix.replace("_", r"\_") + "%"}):
            entry = rows.setdefault(row.order_id, (row.status, row.customer_id, []))
            if row.product_id is not None:
                entry[2].append((row.product_id, int(row.quantity)))
    return {o: StoredOrder(s, c, tuple(items)) for o, (s, c, items) in rows.items()}


def stored_orders_at_rest(
    engine: sa.Engine, customer_prefix: str, quiet_s: float = 5.0, timeout_s: float = 90.0
) -> dict[str, StoredOrder]:
    """``stored_orders`` once they have stopped changing for ``quiet_s`` (bounded): orders
    nobody was told of may still be landing after the accepted ones are final."""
    deadline = time.monotonic() + timeout_s
    last = stored_orders(engine, customer_prefix)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
        time.sleep(1.0)
        now = stored_orders(engine, customer_prefix)
        if now != last:
            last, quiet_since = now, time.monotonic()
    return last


def check_answers(logs: Iterable[KeyLog]) -> list[Check]:
    """Every client got a final answer it understands (nothing unexpected, no give-up)."""
    unexpected, unanswered = Check("answers understood"), Check("every order answered")
    for log in logs:
        if log.outcome == UNEXPECTED:
            last = log.answers[-1]
            unexpected.failures.append(f"key {log.key}: HTTP {last.status} {last.detail}")
        elif log.outcome == GAVE_UP:
            kinds = Counter(a.kind for a in log.answers)
            unanswered.failures.append(f"key {log.key}: gave up after {dict(kinds)}")
    return [unexpected, unanswered]


def check_final_through_api(not_final: set[str], orders: dict[str, StoredOrder]) -> Check:
    """Invariant 3 as a storefront sees it: ``GET /v1/orders/{id}`` showed every accepted
    order in a terminal status before the drain's timeout."""
    check = Check("final through the API")
    for order_id in sorted(not_final):
        stored = orders.get(order_id)
        where = f"PostgreSQL: {stored.status}" if stored is not None else "no order row"
        check.failures.append(f"{order_id}: never shown final ({where})")
    return check


def check_one_order_per_key(logs: Iterable[KeyLog]) -> Check:
    """Invariant 4/7: the answers for one Idempotency-Key never name two order ids."""
    check = Check("one order id per key")
    for log in logs:
        if len(log.named_ids) > 1:
            trail = [(a.status, a.order_id) for a in log.answers if a.order_id]
            check.failures.append(f"key {log.key}: {sorted(log.named_ids)} via {trail}")
    return check


def check_one_order_per_key_stored(logs: Iterable[KeyLog], orders: dict[str, StoredOrder]) -> Check:
    """Invariant 7 in PostgreSQL: no Idempotency-Key owns two orders. Every key's order is
    placed for a customer id of its own, so two rows of that customer that are not
    rejected (a rejected order holds nothing, e.g. a duplicate the sink refused) are two
    orders made from one key's request and its retries."""
    by_customer: dict[str, list[str]] = defaultdict(list)
    for order_id, stored in orders.items():
        by_customer[stored.customer_id].append(order_id)
    check = Check("one order per key in PostgreSQL")
    keys = {log.customer_id: log for log in logs}
    for customer_id, order_ids in sorted(by_customer.items()):
        if sum(orders[o].status != "rejected" for o in order_ids) < 2:
            continue
        log = keys.get(customer_id)
        told = sorted(log.named_ids) if log is not None else []
        rows = [(o, orders[o].status) for o in sorted(order_ids)]
        key = log.key if log is not None else "?"
        check.failures.append(f"key {key} ({customer_id}): rows {rows}, answers named {told}")
    return check


def committed_events(settings: Settings, customer_prefix: str) -> dict[str, str]:
    """order id -> customer id of every ``orders.committed`` record of these customers."""
    found = {}
    topic = settings.topics(topics.ORDERS_COMMITTED)
    for record in read_to_end(settings.kafka_bootstrap, topic):
        try:
            body = json.loads(record.value)
        except ValueError:  # not an order (a poison record another test dead-letters)
            continue
        if not isinstance(body, dict):
            continue
        customer = str(body.get("customer_id", ""))
        if customer.startswith(customer_prefix):
            found[str(body["order_id"])] = customer
    return found


def check_committed_told(settings: Settings, logs: Iterable[KeyLog], customer_prefix: str) -> Check:
    """Invariant 7 on the public ``orders.committed`` topic: no order is committed that its
    client was not told of (a 202/201, or a 503 naming it): a client told "nothing was
    accepted" must not find its order committed downstream, even if it is cancelled later."""
    told = {order_id for log in logs for order_id in log.named_ids}
    committed = committed_events(settings, customer_prefix)
    check = Check("no order committed nobody was told of")
    for order_id, customer_id in sorted(committed.items()):
        if order_id not in told:
            check.failures.append(f"order {order_id} ({customer_id}) committed, never told")
    check.note = f"{len(committed)} committed orders"
    return check


def check_nothing_lost(logs: Iterable[KeyLog], orders: dict[str, StoredOrder]) -> Check:
    """Invariant 3: every order a client was told was accepted has its terminal row."""
    check = Check("nothing lost")
    for log in logs:
        for order_id in sorted(log.accepted_ids):
            stored = orders.get(order_id)
            if stored is None:
                check.failures.append(f"key {log.key}: accepted {order_id} has no order row")
            elif stored.status not in TERMINAL_STATUSES:
                check.failures.append(f"key {log.key}: {order_id} is {stored.status}")
    return check


def check_told(logs: Iterable[KeyLog], orders: dict[str, StoredOrder]) -> Check:
    """Invariant 7: no order row no client was told of (a 202/201, or a 503 naming it),
    unless it ended cancelled or rejected (holding no stock; the reconciler checks the
    stock those released)."""
    told = {order_id for log in logs for order_id in log.named_ids}
    check = Check("no order nobody was told of")
    untold: Counter[str] = Counter()
    for order_id, stored in sorted(orders.items()):
        if order_id in told:
            continue
        untold[stored.status] += 1
        if stored.status not in STOCKLESS_STATUSES:
            check.failures.append(
                f"order {order_id} ({stored.customer_id}, {list(stored.items)}) is"
                f" {stored.status} but no client was told of it"
            )
    check.note = f"untold rows by status: {dict(untold)}" if untold else ""
    return check


def check_oversell(orders: dict[str, StoredOrder], stock: dict[str, int]) -> Check:
    """Invariant 1 from PostgreSQL: shipped units of each product <= the stock given."""
    shipped: Counter[str] = Counter()
    for stored in orders.values():
        if stored.status == "shipped":
            for product_id, quantity in stored.items:
                shipped[product_id] += quantity
    check = Check("no oversell")
    for product_id, given in sorted(stock.items()):
        if shipped[product_id] > given:
            check.failures.append(f"{product_id}: shipped {shipped[product_id]} > stock {given}")
    check.note = ", ".join(f"{p.rsplit('-', 1)[-1]} {shipped[p]}/{stock[p]}" for p in sorted(stock))
    return check


def shipped_events(settings: Settings, order_ids: set[str]) -> dict[str, set[str]]:
    """order id -> distinct event ids on ``orders.shipped`` (read to its end)."""
    found: dict[str, set[str]] = defaultdict(set)
    topic = settings.topics(topics.ORDERS_SHIPPED)
    for record in read_to_end(settings.kafka_bootstrap, topic):
        body = json.loads(record.value)
        if body.get("order_id") in order_ids:
            found[body["order_id"]].add(body["event_id"])
    return found


def check_shipped_events(
    settings: Settings, orders: dict[str, StoredOrder], timeout_s: float
) -> Check:
    """Invariant 4: one distinct shipped event id per shipped order, none for the others.
    The relay is asynchronous: re-read (bounded) until every shipped order has its event."""
    shipped = {o for o, stored in orders.items() if stored.status == "shipped"}
    deadline = time.monotonic() + timeout_s
    while True:
        events = shipped_events(settings, set(orders))
        if shipped <= set(events) or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    check = Check("one shipped event per shipped order")
    for order_id in sorted(set(orders)):
        seen, want = len(events.get(order_id, ())), int(order_id in shipped)
        if seen != want:
            status = orders[order_id].status
            check.failures.append(f"{order_id} ({status}): {seen} shipped event ids, want {want}")
    check.note = f"{len(shipped)} shipped orders"
    return check


def check_reconcile(settings: Settings, product_ids: list[str], timeout_s: float) -> Check:
    """``Reconciler.check`` on the run's products; it needs the pipeline at rest, so it is
    repeated (bounded) while it reports anything, and the last answer counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        with Reconciler(settings) as reconciler:
            violations = [str(v) for v in reconciler.check(product_ids=product_ids)]
        if not violations or time.monotonic() > deadline:
            return Check("reconcile", violations)
        time.sleep(5.0)


def check_stall(
    samples: list[Sample],
    windows: list[tuple[float, float]],
    origin: float,
    threshold_s: float = STALL_THRESHOLD_S,
) -> Check:
    """The longest time a requests partition with waiting records saw no committed
    progress outside the fault windows, against ``threshold_s``."""
    check = Check(f"no stall > {threshold_s:g}s outside faults")
    worst = longest_stall(samples, windows)
    if worst is None:
        check.note = f"no stall seen ({len(samples)} samples)"
        return check
    where = (
        f"partition {worst.partition}, {worst.start - origin:.0f}-{worst.end - origin:.0f}s"
        f" ({worst.end - worst.start:.1f}s in all)"
    )
    check.note = f"longest {worst.outside_s:.1f}s outside faults: {where}; {len(samples)} samples"
    if worst.outside_s > threshold_s:
        check.failures.append(check.note)
    return check


def assert_all_ok(found: Iterable[Check], what: str) -> None:
    """Fail with every failed check and its first failures, under ``what`` (e.g. counts)."""
    failed = [c for c in found if not c.ok]
    summary = "\n".join(
        f"{c.name}: {len(c.failures)} {c.note}\n  " + "\n  ".join(c.failures[:5]) for c in failed
    )
    assert not failed, f"{what}:\n{summary}"


def check_keys_and_answers(
    logs: list[KeyLog], not_final: set[str], orders: dict[str, StoredOrder]
) -> list[Check]:
    """What every retrying-storefront test checks: each answer understood, each accepted
    order final, one order per key (told and stored), none lost, none nobody was told of."""
    return [
        *check_answers(logs),
        check_final_through_api(not_final, orders),
        check_one_order_per_key(logs),
        check_one_order_per_key_stored(logs, orders),
        check_nothing_lost(logs, orders),
        check_told(logs, orders),
    ]
