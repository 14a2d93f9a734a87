"""``orderstream reconcile``: check DESIGN.md's invariants 1-5 and 7 against the durable record.

Sources: PostgreSQL (``orders``, ``order_items``), the stock table (read from its
compacted changelog topic, the same state the Faust workers restore from), the Redis
read model (with the Idempotency-Key claims, the record of what each key was answered), and
the public ``orders.shipped`` topic (an order shipped before the first record retention
left in its partition is counted, not checked). Every violation is printed; the
command exits non-zero when there is any. Run it at rest (no orders in flight): the
conservation checks compare counters that only agree once the pipeline has drained.
Without ``--repair`` it only reports and changes nothing; with it, what can be fixed safely
from the durable record is fixed and each repair printed (``orderstream.repair``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click
import msgspec
import redis
import sqlalchemy as sa

from orderstream.core import replica
from orderstream.core.readmodel import Keys, decode_order, decode_product
from orderstream.core.settings import Settings
from orderstream.repair import Outcome, Repair, Repairer
from orderstream.stockview import StockSnapshot, stock_changelog_topic, stock_snapshot
from orderstream.topicread import log_starts, read_to_end
from schemas import topics
from schemas.orders import TERMINAL_STATUSES
from schemas.partitioning import partition_for

logger = logging.getLogger(__name__)
EXPIRY_MARGIN_MS = 60_000


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.detail}"


class Reconciler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # scans read the replica when there is one, once it has replayed the primary's writes
        self.engine, self.primary = replica.read_and_primary(
            settings.read_database_url, settings.database_url
        )
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.keys = Keys(settings.topic_prefix)
        self.expired = 0  # shipped orders the last check could not check: their events expired
        # what the last check read, for ``repair``
        self._orders_seen: dict[str, dict[str, Any]] = {}
        self._stock_seen: dict[str, StockSnapshot] = {}
        self._unshipped: list[str] = []  # shipped orders whose event orders.shipped lacks
        self._scope: list[str] | None = None

    def __enter__(self) -> Reconciler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()
        self.primary.dispose()
        self.redis.close()

    # ------------------------------------------------------------------ sources
    def _orders(self, product_ids: list[str] | None) -> dict[str, dict[str, Any]]:
        """Orders (with their items) touching the given products, or all orders."""
        scope = (
            "WHERE o.order_id IN (SELECT order_id FROM order_items WHERE product_id = ANY(:p))"
            if product_ids is not None
            else ""
        )
        query = sa.text(
            "SELECT o.order_id, o.status, o.reason, o.request_key, o.total_amount, o.updated_at,"
            " i.line_no,"
            " i.product_id, i.quantity,"
            " i.unit_price FROM orders o LEFT JOIN order_items i USING (order_id) "
            f"{scope} ORDER BY o.order_id, i.line_no"
        )
        orders: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query, {"p": product_ids or []}):
                order = orders.setdefault(
                    row.order_id,
                    {
                        "status": row.status,
                        "reason": row.reason,
                        "request_key": row.request_key,
                        "total": row.total_amount,
                        "updated_at": row.updated_at,
                        "items": [],
                    },
                )
                if row.line_no is not None:
                    order["items"].append(row)
        return orders

    def _shipped_events(self, order_ids: set[str]) -> ShippedLog:
        """The distinct event ids per order on orders.shipped (read to its end), and where
        retention has deleted its beginning."""
        events: dict[str, set[str]] = defaultdict(set)
        first: dict[int, int] = {}  # partition -> timestamp (ms) of its first record held
        topic = self.settings.topics(topics.ORDERS_SHIPPED)
        for record in read_to_end(self.settings.kafka_bootstrap, topic):
            first.setdefault(record.partition, record.timestamp)
            body = msgspec.json.decode(record.value)
            if body.get("order_id") in order_ids:
                events[body["order_id"]].add(body["event_id"])
        now_ms = int(time.time() * 1000)
        starts = log_starts(self.settings.kafka_bootstrap, topic)
        expired_before = {p: first.get(p, now_ms) for p, start in starts.items() if start > 0}
        return ShippedLog(events, expired_before, max(len(starts), 1))

    def _stock(self, product_ids: list[str] | None) -> dict[str, StockSnapshot]:
        return stock_snapshot(
            self.settings.kafka_bootstrap, stock_changelog_topic(self.settings), product_ids
        )

    # ------------------------------------------------------------------- checks
    def check(self, product_ids: Iterable[str] | None = None) -> list[Violation]:
        scope = list(product_ids) if product_ids is not None else None
        if self.primary is not self.engine:
            replica.wait_replayed(self.primary, self.engine)
        orders = self._orders(scope)
        stock = self._stock(scope)
        violations: list[Violation] = []
        violations += check_orders(orders)
        violations += check_stock(orders, stock, scope)
        violations += self._check_read_model(orders, stock)
        violations += check_request_keys(orders, self._answered(orders))
        shipped_log = self._shipped_events(set(orders))
        found, self.expired = check_shipped_events(orders, shipped_log)
        violations += found
        self._orders_seen, self._stock_seen, self._scope = orders, stock, scope
        self._unshipped = missing_shipped_events(orders, shipped_log)
        return violations

    def repair(self) -> list[Outcome]:
        """Repair what the last ``check`` found and can be fixed safely (``orderstream.repair``):
        the read model from PostgreSQL and the stock table, missing shipped events through the
        outbox; what cannot be is returned as needing an operator. Writes the primary."""
        repairer = Repairer(self.settings, self.primary, self.redis, self.keys)
        outcomes: list[Outcome] = []
        outcomes += repairer.order_statuses(self._orders_seen)
        outcomes += repairer.product_availability(self._stock_seen)
        outcomes += repairer.shipped_events(self._unshipped)
        outcomes += repairer.stuck(self._scope, self._orders_seen)
        return outcomes

    def _answered(self, orders: dict[str, dict[str, Any]]) -> dict[str, str]:
        """request key -> the order id its Idempotency-Key's claim names (what its client was,
        or on a retry will be, answered), for the claims Redis still holds; read a thousand
        claims per MGET, so a check of every order does not send one huge command."""
        request_keys = sorted({o["request_key"] for o in orders.values() if o["request_key"]})
        answered = {}
        for start in range(0, len(request_keys), 1000):
            chunk = request_keys[start : start + 1000]
            claims = self.redis.mget([self.keys.idempotency(k) for k in chunk])
            for request_key, claim in zip(chunk, claims, strict=True):
                token = msgspec.json.decode(claim).get("token") if claim is not None else None
                if token:
                    answered[request_key] = token
        return answered

    def _check_read_model(
        self, orders: dict[str, dict[str, Any]], stock: dict[str, StockSnapshot]
    ) -> list[Violation]:
        found = []
        for order_id, order in orders.items():
            cached = decode_order(self.redis.hgetall(self.keys.order(order_id)))
            if cached is not None and cached["status"] != order["status"]:
                found.append(
                    Violation(
                        "3 nothing lost",
                        order_id,
                        f"read model says {cached['status']}, PostgreSQL {order['status']}",
                    )
                )
        for product_id, state in stock.items():
            shown = decode_product(product_id, self.redis.hgetall(self.keys.product(product_id)))
            if shown is not None and shown["available"] != state.available:
                found.append(
                    Violation(
                        "2 conservation",
                        product_id,
                        f"read model shows {shown['available']} available, table {state.available}",
                    )
                )
        return found


@dataclass(frozen=True)
class ShippedLog:
    """What orders.shipped holds: ``events`` (order id -> distinct event ids), and for each
    partition whose beginning retention deleted, the time (ms) of its first record held."""

    events: dict[str, set[str]]
    expired_before: dict[int, int]
    partitions: int


def check_shipped_events(
    orders: dict[str, dict[str, Any]], log: ShippedLog
) -> tuple[list[Violation], int]:
    """Exactly one shipped event per shipped order, none for the others; returns the
    violations and how many shipped orders went unchecked because retention has deleted
    the part of their partition their event was in (shipped before its first record held,
    with ``EXPIRY_MARGIN_MS`` for the clocks of PostgreSQL and the relay)."""
    found = []
    expired = 0
    for order_id, order in orders.items():
        seen = len(log.events.get(order_id, ()))
        want = 1 if order["status"] == "shipped" else 0
        if seen == want:
            continue
        if want == 1 and seen == 0 and _event_expired(order_id, order, log):
            expired += 1
            continue
        found.append(
            Violation("4 no duplicates", order_id, f"{seen} distinct shipped events, want {want}")
        )
    return found, expired


def missing_shipped_events(orders: dict[str, dict[str, Any]], log: ShippedLog) -> list[str]:
    """Shipped orders with no event on orders.shipped, in a partition that still holds the
    time they shipped (an order whose event retention deleted is not missing)."""
    return sorted(
        order_id
        for order_id, order in orders.items()
        if order["status"] == "shipped"
        and not log.events.get(order_id)
        and not _event_expired(order_id, order, log)
    )


def _event_expired(order_id: str, order: dict[str, Any], log: ShippedLog) -> bool:
    """Whether the order shipped before the first record its partition still holds (with
    ``EXPIRY_MARGIN_MS`` for the clocks of PostgreSQL and the relay)."""
    cutoff = log.expired_before.get(partition_for(order_id.encode(), log.partitions))
    shipped_at = order.get("updated_at")
    return cutoff is not None and (
        shipped_at is None or shipped_at.timestamp() * 1000 < cutoff + EXPIRY_MARGIN_MS
    )


def check_orders(orders: dict[str, dict[str, Any]]) -> list[Violation]:
    """Invariants 3-5 on PostgreSQL's orders (each with its ``items`` rows)."""
    found = []
    for order_id, order in orders.items():
        if order["status"] not in TERMINAL_STATUSES:
            found.append(Violation("3 nothing lost", order_id, f"status {order['status']}"))
        items = order["items"]
        if order["status"] == "shipped":
            line_nos = [i.line_no for i in items]
            if not items or line_nos != list(range(len(items))):
                found.append(Violation("5 all or nothing", order_id, f"lines {line_nos}"))
            total = sum((i.unit_price * i.quantity for i in items), start=0)
            if total != order["total"]:
                found.append(
                    Violation("5 all or nothing", order_id, f"total {order['total']} != {total}")
                )
            products = Counter(i.product_id for i in items)
            if any(n > 1 for n in products.values()):
                found.append(Violation("4 no duplicates", order_id, f"products {products}"))
    return found


def check_request_keys(
    orders: dict[str, dict[str, Any]], answered: dict[str, str]
) -> list[Violation]:
    """Invariant 7: an Idempotency-Key has at most one order that is not rejected, and that
    order is the one its claim names, the one its client was told of. (An order written
    rejected holds no stock: conservation checks that.)"""
    owners: dict[str, list[str]] = defaultdict(list)
    for order_id, order in orders.items():
        if order["request_key"] and order["status"] != "rejected":
            owners[order["request_key"]].append(order_id)
    found = []
    for request_key, order_ids in sorted(owners.items()):
        if len(order_ids) > 1:
            found.append(
                Violation("7 truthful answers", request_key, f"one key, orders {sorted(order_ids)}")
            )
        told = answered.get(request_key)
        for order_id in order_ids:
            if told is not None and told != order_id:
                status = orders[order_id]["status"]
                found.append(
                    Violation(
                        "7 truthful answers",
                        order_id,
                        f"{status}, but its Idempotency-Key was answered with order {told}",
                    )
                )
    return found


def check_stock(
    orders: dict[str, dict[str, Any]],
    stock: dict[str, StockSnapshot],
    scope: list[str] | None,
) -> list[Violation]:
    """Invariants 1-2: the stock table against itself and against PostgreSQL."""
    shipped: Counter[str] = Counter()
    for order in orders.values():
        if order["status"] == "shipped":
            for item in order["items"]:
                shipped[item.product_id] += item.quantity
    found = []
    for product_id in scope if scope is not None else sorted(set(stock) | set(shipped)):
        state = stock.get(product_id)
        if state is None:
            if shipped[product_id]:
                found.append(Violation("1 no oversell", product_id, "shipped but no stock state"))
            continue
        if state.available < 0:
            found.append(Violation("1 no oversell", product_id, f"available {state.available}"))
        if shipped[product_id] > state.added:
            found.append(
                Violation(
                    "1 no oversell",
                    product_id,
                    f"shipped {shipped[product_id]} > ever added {state.added}",
                )
            )
        if state.available != state.added - state.reserved + state.released:
            found.append(
                Violation(
                    "2 conservation",
                    product_id,
                    f"available {state.available} != added {state.added} - reserved "
                    f"{state.reserved} + released {state.released}",
                )
            )
        held = state.reserved - state.released
        if held != shipped[product_id]:
            found.append(
                Violation(
                    "2 conservation",
                    product_id,
                    f"stock table holds {held} units, PostgreSQL shipped {shipped[product_id]}",
                )
            )
    return found


@click.command()
@click.option("--product", "product_ids", multiple=True, help="limit to these products")
@click.option(
    "--repair",
    is_flag=True,
    help="fix what can be fixed safely (the read model, missing shipped events) and print"
    " each repair; run at rest",
)
def reconcile(product_ids: tuple[str, ...], repair: bool) -> None:
    """Check invariants 1-5 and 7 of DESIGN.md; print every violation; exit 1 on any.

    With --repair, then repair what can be repaired and print each repair; the exit status
    is still the check's (run it again to see what is left)."""
    outcomes: list[Outcome] = []
    with Reconciler(Settings.from_env()) as reconciler:
        violations = reconciler.check(list(product_ids) or None)
        expired = reconciler.expired
        if repair:
            outcomes = reconciler.repair()
    for violation in violations:
        click.echo(str(violation))
    if expired:
        click.echo(f"{expired} shipped order(s) older than orders.shipped's retention: not checked")
    click.echo(f"{len(violations)} violation(s)")
    if repair:
        for outcome in outcomes:
            click.echo(str(outcome))
        repaired = sum(1 for o in outcomes if isinstance(o, Repair))
        click.echo(f"{repaired} repair(s)")
    if violations:
        raise SystemExit(1)
