"""``orderstream reconcile --repair``: fix, from the durable record, what reconcile finds and
can be fixed safely; print each repair; hand the rest to an operator.

Run it at rest, like reconcile (no orders in flight, the pipeline drained). What it repairs:

- **Read-model drift.** An order whose Redis status differs from PostgreSQL's gets
  PostgreSQL's status and fields (the sink's ``order_fields``), and a product whose Redis
  availability differs from the stock table gets the table's product record
  (``product_fields`` with the record's version, as the stock agent writes it). Redis is
  never the truth: PostgreSQL and the stock table are.
- **A missing shipped event.** A shipped order with no event on ``orders.shipped`` (in a
  partition that still holds its history: reconcile leaves out what retention deleted) is
  queued again in the sink's outbox, with the event the sink would have written
  (``shipped_row``: the same deterministic ``event_id``); the relay publishes it, and
  downstream dedupes by ``event_id``.

What it never does: edit stock (the stock table is changed only by the stock agent, and a
repair that needed it would go through ``inventory.commands``), write PostgreSQL's orders
or items, or decide an order. An order the read model shows on its way past ``hold_time_s``
with no row in PostgreSQL is reported as needing an operator, with the reason (``stuck``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis
import sqlalchemy as sa

from orderstream.core.readmodel import (
    ORDER_TTL_S,
    Keys,
    ReadModel,
    ReadModelWrites,
    Sender,
    decode_order,
    decode_product,
    product_fields,
)
from orderstream.core.settings import Settings
from orderstream.core.tables import OUTBOX_CHANNEL
from orderstream.stockview import StockSnapshot, stock_changelog_topic
from orderstream.topicread import read_to_end
from schemas.common import event_id_for
from schemas.orders import (
    TERMINAL_STATUSES,
    OrderCommitted,
    OrderItem,
    PaymentReference,
    ShippingAddress,
)
from sinks.projection import order_fields, shipped_row
from sinks.store import write_outbox
from streams.records import ProductState, decode_stock, is_product_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repair:
    """One change made: ``what`` of ``subject``, from ``before`` to ``after``."""

    what: str
    subject: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"repaired {self.what} {self.subject}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class NeedsOperator:
    """Something found that no repair here may change, and why."""

    subject: str
    reason: str

    def __str__(self) -> str:
        return f"needs an operator: {self.subject}: {self.reason}"


Outcome = Repair | NeedsOperator

_ORDER = sa.text(
    "SELECT o.order_id, o.customer_id, o.status, o.reason, o.total_amount, o.updated_at,"
    " o.shipping_address, o.payment_method, i.line_no, i.product_id, i.quantity, i.unit_price"
    " FROM orders o LEFT JOIN order_items i USING (order_id)"
    " WHERE o.order_id = ANY(:ids) ORDER BY o.order_id, i.line_no"
)
_OUTBOX_ROW = sa.text("SELECT sent_at FROM outbox WHERE event_id = :event_id")
# only a row already sent: one still unsent is the relay's to send, once
_REQUEUE = sa.text(
    "UPDATE outbox SET sent_at = NULL WHERE event_id = :event_id AND sent_at IS NOT NULL"
)
_NOTIFY_RELAY = sa.text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")


class Repairer:
    """Repairs on the primary PostgreSQL (``engine``), Redis (``client``) and the changelog."""

    def __init__(
        self, settings: Settings, engine: sa.Engine, client: redis.Redis, keys: Keys
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = client
        self.keys = keys

    # -------------------------------------------------------------- read model
    def order_statuses(self, orders: dict[str, dict[str, Any]]) -> list[Outcome]:
        """Write PostgreSQL's status over a Redis status that differs from it.

        The live writers only move a status forward (``SET_STATUS_LUA``), because while
        orders are in flight a late write must not undo a newer one. At rest nothing is in
        flight: PostgreSQL's row is final and no writer will send this order a status again
        (a sink restarting rewrites its last minute's statuses from PostgreSQL, the same
        value). So the repair replaces the hash (deleted and written again in one MULTI,
        publishing the status for anyone waiting on the order) even when Redis shows a
        status of the same or a higher rank, e.g. ``shipped`` for a ``cancelled`` order."""
        drifted = {}
        for order_id, order in orders.items():
            cached = decode_order(self.redis.hgetall(self.keys.order(order_id)))
            if cached is not None and cached["status"] != order["status"]:
                drifted[order_id] = cached["status"]
        outcomes: list[Outcome] = []
        writer = ReadModel(self.keys)
        for order_id, row in self._order_rows(sorted(drifted)).items():
            if row["status"] not in TERMINAL_STATUSES:
                continue  # PostgreSQL holds final orders only (orders_status_terminal)
            lines = [(i.product_id, i.quantity, i.unit_price) for i in row["items"]]
            fields = order_fields(row["customer_id"], lines, row["total"], row["reason"])
            call = writer.set_status(order_id, row["status"], fields)
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.order(order_id))
            self.redis.register_script(call.script or "")(
                keys=call.keys, args=call.args, client=pipe
            )
            written = pipe.execute()[-1]
            if written != 1:  # the script refused it: say so rather than claim a repair
                outcomes.append(
                    NeedsOperator(order_id, f"Redis did not take status {row['status']}")
                )
                continue
            outcomes.append(
                Repair("read-model status of order", order_id, drifted[order_id], row["status"])
            )
        return outcomes

    def product_availability(self, stock: dict[str, StockSnapshot]) -> list[Outcome]:
        """Write the stock table's product record over a Redis availability that differs.

        The record goes with its own version (the last offsets applied to it), as the stock
        agent writes it: a hash holding that version is overwritten; one holding a newer
        version than the table's (which at rest no writer can have made) is left alone and
        reported."""
        drifted = {}
        for product_id, state in stock.items():
            shown = decode_product(product_id, self.redis.hgetall(self.keys.product(product_id)))
            if shown is not None and shown["available"] != state.available:
                drifted[product_id] = shown["available"]
        if not drifted:
            return []
        records = self._product_records(list(drifted))
        writes = ReadModelWrites(self.keys)
        for product_id, record in records.items():
            writes.product(
                product_id,
                (record.applied_commands, record.applied_requests),
                product_fields(
                    name=record.name,
                    price=str(record.price),
                    description=record.description,
                    available=record.available,
                    active=record.active,
                    limit_per_customer=record.limit_per_customer,
                ),
            )
        Sender(self.redis).send(writes)
        outcomes: list[Outcome] = []
        for product_id, before in sorted(drifted.items()):
            shown = decode_product(product_id, self.redis.hgetall(self.keys.product(product_id)))
            want = stock[product_id].available
            if shown is not None and shown["available"] == want:
                outcomes.append(
                    Repair("read-model availability of product", product_id, str(before), str(want))
                )
            else:
                outcomes.append(
                    NeedsOperator(
                        product_id,
                        f"Redis shows {before} available under a version newer than the stock "
                        f"table's ({want}): not overwritten",
                    )
                )
        return outcomes

    # ------------------------------------------------------------ shipped events
    def shipped_events(self, order_ids: Iterable[str]) -> list[Outcome]:
        """Queue again the shipped event of shipped orders that ``orders.shipped`` lacks.

        By the outbox row of the order's shipped ``event_id``:

        - none (purged after it was sent, or never written): insert the event the sink
          would have written (``ON CONFLICT DO NOTHING``, so two repairs at once insert one);
        - sent: Kafka acknowledged it, yet the partition, which still holds its history,
          lacks it (lost after the acknowledgement): mark it unsent, so the relay publishes
          it again. Downstream dedupes by ``event_id``, so a second copy is harmless;
        - not sent yet: it is the relay's to send; nothing is changed, and it is reported
          (is the relay running?).

        A repeated repair finds the row unsent, or the event on the topic: no second change."""
        outcomes: list[Outcome] = []
        ids = sorted(order_ids)
        rows = self._order_rows(ids)
        with self.engine.begin() as conn:
            for order_id in ids:
                row = rows.get(order_id)
                if row is None or row["status"] != "shipped":
                    continue
                if not row["items"]:
                    outcomes.append(NeedsOperator(order_id, "shipped without items"))
                    continue
                event_id = event_id_for(order_id, "shipped")
                existing = conn.execute(_OUTBOX_ROW, {"event_id": event_id}).first()
                if existing is None:
                    event = shipped_row(_committed(order_id, row), self.settings.topics, row["at"])
                    write_outbox(conn, [event])
                    outcomes.append(
                        Repair("shipped event of order", order_id, "missing", f"queued {event_id}")
                    )
                elif existing.sent_at is not None:
                    conn.execute(_REQUEUE, {"event_id": event_id})
                    conn.execute(_NOTIFY_RELAY)
                    outcomes.append(
                        Repair(
                            "shipped event of order",
                            order_id,
                            f"sent {existing.sent_at.isoformat()} but missing",
                            f"queued again {event_id}",
                        )
                    )
                else:
                    outcomes.append(
                        NeedsOperator(
                            order_id,
                            f"shipped event {event_id} is queued in the outbox and not sent yet:"
                            " is the relay running?",
                        )
                    )
        return outcomes

    # ------------------------------------------------------------- stuck orders
    def stuck(self, product_ids: list[str] | None, in_postgresql: Iterable[str]) -> list[Outcome]:
        """Orders the read model shows on their way (``accepted``, ``committed``) with no row
        in PostgreSQL and no change for longer than ``hold_time_s``: never repaired.

        PostgreSQL only ever holds final orders (``orders_status_terminal``), so a stuck order
        is one the read model knows and the sink never wrote. No repair of it is safe here:

        - ``accepted``: its lines may never have reached Kafka (an outcome-unknown answer), in
          which case its Idempotency-Key's claim is still in flight and a retry by its client
          publishes them; writing it final (or releasing stock for it) would contradict what
          the retry then gets. If they did reach Kafka, the stock agent and the settler decide
          it; a multi-line order whose lines do not all arrive is expired by the settler on
          its own ticks, which release what was reserved. A stuck one means a program is down
          or behind.
        - ``committed``: the stock agent or the settler committed it, its units are held, and
          ``orders.committed`` holds its record for the sink, which writes it shipped (or
          cancelled, releasing). A release sent from here (``ReleaseLine``) would give back
          units the sink is about to ship: an oversell. Expiry never applies to a committed
          order.

        So each is reported with its age; an operator looks at the sink, the workers and the
        consumer lags (docs/operations.md) rather than at the order. Reads every order hash
        (SCAN, a thousand per round trip): the cost of the read model's size, once."""
        known = set(in_postgresql)
        wanted = set(product_ids) if product_ids is not None else None
        prefix = self.keys.order("")
        hold_s = self.settings.hold_time_s
        found: list[Outcome] = []
        batch: list[bytes] = []

        def examine(redis_keys: list[bytes]) -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in redis_keys:
                pipe.hgetall(key)
                pipe.ttl(key)
            replies = pipe.execute()
            for key, raw, ttl in zip(redis_keys, replies[::2], replies[1::2], strict=True):
                order = decode_order(raw)
                order_id = key.decode()[len(prefix) :]
                if order is None or order["status"] in TERMINAL_STATUSES or order_id in known:
                    continue
                lines = {i.get("product_id") for i in order.get("items") or ()}
                if wanted is not None and not lines & wanted:
                    continue
                age_s = ORDER_TTL_S - ttl if ttl >= 0 else 0
                if age_s <= hold_s:
                    continue
                found.append(
                    NeedsOperator(
                        order_id,
                        f"{order['status']} in the read model for {age_s} s (hold time "
                        f"{hold_s:g} s), not in PostgreSQL: a program is down or behind, or "
                        "its lines never reached Kafka; not decided here",
                    )
                )

        for key in self.redis.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                examine(batch)
                batch = []
        if batch:
            examine(batch)
        return sorted(found, key=lambda o: o.subject)

    # ------------------------------------------------------------------ sources
    def _order_rows(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if not order_ids:
            return rows
        with self.engine.connect() as conn:
            for r in conn.execute(_ORDER, {"ids": order_ids}):
                order = rows.setdefault(
                    r.order_id,
                    {
                        "customer_id": r.customer_id,
                        "status": r.status,
                        "reason": r.reason,
                        "total": r.total_amount,
                        "at": r.updated_at or datetime.now(UTC),
                        "shipping_address": r.shipping_address,
                        "payment_method": r.payment_method,
                        "items": [],
                    },
                )
                if r.line_no is not None:
                    order["items"].append(r)
        return rows

    def _product_records(self, product_ids: list[str]) -> dict[str, ProductState]:
        """The stock table's latest product records for ``product_ids``."""
        wanted = {p.encode() for p in product_ids}
        latest: dict[bytes, bytes | None] = {}
        topic = stock_changelog_topic(self.settings)
        for record in read_to_end(self.settings.kafka_bootstrap, topic):
            if record.key in wanted and is_product_key(record.key):
                latest[record.key] = record.value
        records = {}
        for key, value in latest.items():
            state = decode_stock(value) if value is not None else None
            if isinstance(state, ProductState):
                records[key.decode()] = state
        return records


def _committed(order_id: str, row: dict[str, Any]) -> OrderCommitted:
    """The order as the sink read it from ``orders.committed``, rebuilt from its rows."""
    return OrderCommitted(
        event_id=event_id_for(order_id, "committed"),
        order_id=order_id,
        customer_id=row["customer_id"],
        items=tuple(
            OrderItem(
                line_no=i.line_no,
                product_id=i.product_id,
                quantity=i.quantity,
                unit_price=i.unit_price,
            )
            for i in row["items"]
        ),
        total=row["total"],
        shipping_address=msgspec.convert(row["shipping_address"], ShippingAddress)
        if row["shipping_address"] is not None
        else None,
        payment_method=msgspec.convert(row["payment_method"], PaymentReference)
        if row["payment_method"] is not None
        else None,
        occurred_at=row["at"],
    )
