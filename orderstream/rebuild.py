"""``orderstream readmodel rebuild``: write the Redis read model again from the durable record.

For an operator who lost Redis, or suspects the read model drifted from the truth. It runs on a
live stack: the workers, the sink and the ingress keep writing while it writes, and no read
sees an older value than it would have without it.

What it rebuilds, and from where:

* **Products** (``Keys.product``: name, price, description, availability, active, limit, and
  so the sold-out gate's view of them; ``Keys.product_ids``) from the stock table, read from
  its compacted changelog to its end (``orderstream.stockview.product_states``, the state every
  worker restores from). Each is written with ``SET_PRODUCT_LUA``, the live stock agent's own
  script, with the record's version (``applied_commands``, ``applied_requests``: the source
  offsets applied to the product, which only grow). A hash that holds a newer version (a
  worker wrote after this command read the changelog) keeps its value: the write is dropped.
* **Orders** (``Keys.order``: status, rank, customer, lines, total, reason) from PostgreSQL
  (``orders``, ``order_items``; the read replica once it has replayed the primary), for the
  orders updated within ``--since-hours`` (default: a day, as long as Redis keeps a final
  order). PostgreSQL holds final orders only, each written once. Each is written with
  ``REBUILD_STATUS_LUA``: never a status of a lower rank than the hash's (forward only, as the
  live writers), and at the final rank the durable record replaces what the hash says.

What it does not rebuild, and why:

* **Orders on their way** (accepted, committed: not in PostgreSQL yet). Only the pipeline
  knows them; the settler and the sink write them again as they move on. Until then a GET of
  one whose hash was lost answers 404.
* **Idempotency-Key claims** (``Keys.idempotency``). A claim records what a client was
  answered (status, body, location); PostgreSQL's ``orders.request_key`` names the order but
  not that answer, so a claim made up from it would not be the truth. Without its claim a
  retried request is taken as new; the sink writes a second order of one key rejected
  ``duplicate_request`` (the partial unique index on ``request_key``), so no key gets two
  orders, but that client sees the second order rejected instead of a replay of the first.
* **Customers' recent orders** (``Keys.customer_orders``). They cover the orders PostgreSQL
  does not hold yet; the history reads every order PostgreSQL holds from it.
* **Pending admin commands** (``Keys.product_pending``) and **signed-out sessions**
  (``Keys.revoked_session``): nothing durable records them.

``--product`` limits it to those products and the orders with lines of them in PostgreSQL: a
rejected order is written there without lines, so it is rebuilt only by a run without it.

Every write is idempotent: a run interrupted at any point (SIGKILL too) is simply run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import redis
import sqlalchemy as sa

from orderstream.core import replica
from orderstream.core.readmodel import (
    BATCH_CHUNK,
    FINAL_ORDER_TTL_S,
    REBUILD_STATUSES_LUA,
    SET_PRODUCTS_LUA,
    Keys,
    batch_calls,
    product_fields,
    status_args,
)
from orderstream.core.settings import Settings
from orderstream.stockview import product_states, stock_changelog_topic
from streams.records import ProductState

Progress = Callable[[str, int, int], None]


@dataclass
class Tally:
    total: int = 0
    done: int = 0
    written: int = 0  # the rest were already current (or newer)


@dataclass
class Summary:
    products: Tally = field(default_factory=Tally)
    orders: Tally = field(default_factory=Tally)
    seconds: float = 0.0

    def __str__(self) -> str:
        p, o = self.products, self.orders
        return (
            f"rebuilt {p.done} products ({p.written} written, {p.done - p.written} already "
            f"current or newer) and {o.done} orders ({o.written} written, "
            f"{o.done - o.written} already current) in {self.seconds:.1f}s"
        )


def product_calls(
    keys: Keys, states: Sequence[ProductState]
) -> Iterator[tuple[list[str], list[Any]]]:
    """SET_PRODUCTS_LUA's (KEYS, ARGV) per chunk: each product with its version, as the stock
    agent writes it (``streams.readmodel``)."""
    calls = []
    for state in states:
        fields = product_fields(
            name=state.name,
            price=str(state.price),
            description=state.description,
            available=state.available,
            active=state.active,
            limit_per_customer=state.limit_per_customer,
        )
        version = [state.applied_commands, state.applied_requests]
        args = [*version, *(item for pair in fields.items() for item in pair)]
        calls.append(([keys.product(state.product_id)], args))
    return batch_calls(calls)


def order_fields(row: Any, lines: Sequence[Any]) -> dict[str, Any]:
    """An ``orders`` row and its ``order_items`` as the order hash's fields (those the sink
    writes, ``sinks.projection.order_fields``)."""
    fields: dict[str, Any] = {"customer_id": row.customer_id, "reason": row.reason}
    if lines:
        fields["items"] = [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": None if line.unit_price is None else str(line.unit_price),
            }
            for line in lines
        ]
    if row.total_amount is not None:
        fields["total"] = str(row.total_amount)
    fields["updated_at"] = row.updated_at.isoformat()
    return fields


class Rebuilder:
    def __init__(self, settings: Settings, page: int = 1000) -> None:
        self.settings = settings
        self.page = page
        self.engine, self.primary = replica.read_and_primary(
            settings.read_database_url, settings.database_url
        )
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.keys = Keys(settings.topic_prefix)
        self._set_products = self.redis.register_script(SET_PRODUCTS_LUA)
        self._set_statuses = self.redis.register_script(REBUILD_STATUSES_LUA)

    def __enter__(self) -> Rebuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()
        self.primary.dispose()
        self.redis.close()

    # ----------------------------------------------------------------- products
    def read_products(self, product_ids: list[str] | None) -> list[ProductState]:
        topic = stock_changelog_topic(self.settings)
        states = product_states(self.settings.kafka_bootstrap, topic, product_ids)
        return [states[p] for p in sorted(states)]

    def write_products(self, states: Sequence[ProductState]) -> int:
        """Write each product unless Redis holds a newer version of it; returns how many
        were written."""
        if not states:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        ids = [arg for state in states for arg in (0, state.product_id)]
        pipe.execute_command("ZADD", self.keys.product_ids(), *ids)
        for redis_keys, args in product_calls(self.keys, states):
            self._set_products(keys=redis_keys, args=args, client=pipe)
        return sum(int(n) for n in pipe.execute()[1:])

    # ------------------------------------------------------------------- orders
    def _scope(self, product_ids: list[str] | None, since: datetime) -> tuple[str, dict[str, Any]]:
        where = "o.updated_at >= :since"
        params: dict[str, Any] = {"since": since}
        if product_ids is not None:
            where += (
                " AND o.order_id IN (SELECT order_id FROM order_items WHERE product_id = ANY(:p))"
            )
            params["p"] = product_ids
        return where, params

    def count_orders(self, product_ids: list[str] | None, since: datetime) -> int:
        where, params = self._scope(product_ids, since)
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM orders o WHERE {where}"), params
                ).scalar_one()
            )

    def order_pages(
        self, product_ids: list[str] | None, since: datetime
    ) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
        """(order_id, status, fields) a page at a time, in order id order (keyset)."""
        where, params = self._scope(product_ids, since)
        after = ""
        query = sa.text(
            "SELECT o.order_id, o.customer_id, o.status, o.reason, o.total_amount, o.updated_at"
            f" FROM orders o WHERE {where} AND o.order_id > :after"
            " ORDER BY o.order_id LIMIT :limit"
        )
        items = sa.text(
            "SELECT order_id, line_no, product_id, quantity, unit_price FROM order_items"
            " WHERE order_id = ANY(:ids) ORDER BY order_id, line_no"
        )
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(query, {**params, "after": after, "limit": self.page}).all()
                if not rows:
                    return
                lines: dict[str, list[Any]] = {}
                for line in conn.execute(items, {"ids": [r.order_id for r in rows]}):
                    lines.setdefault(line.order_id, []).append(line)
            yield [(r.order_id, r.status, order_fields(r, lines.get(r.order_id, []))) for r in rows]
            after = rows[-1].order_id

    def write_orders(self, orders: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
        """Write each order's status and fields unless the hash is ahead of it; returns how
        many statuses were written."""
        calls = (
            ((self.keys.order(o), self.keys.order_channel(o)), status_args(status, fields))
            for o, status, fields in orders
        )
        pipe = self.redis.pipeline(transaction=False)
        for redis_keys, args in batch_calls(calls, BATCH_CHUNK):
            self._set_statuses(keys=redis_keys, args=args, client=pipe)
        return sum(int(n) for n in pipe.execute())

    # -------------------------------------------------------------------- all
    def run(
        self,
        product_ids: list[str] | None = None,
        since: timedelta = timedelta(seconds=FINAL_ORDER_TTL_S),
        progress: Progress | None = None,
    ) -> Summary:
        started = time.monotonic()
        summary = Summary()
        report = progress or (lambda what, done, total: None)

        states = self.read_products(product_ids)
        summary.products.total = len(states)
        report("products", 0, len(states))
        for start in range(0, len(states), BATCH_CHUNK):
            chunk = states[start : start + BATCH_CHUNK]
            summary.products.written += self.write_products(chunk)
            summary.products.done += len(chunk)
            report("products", summary.products.done, summary.products.total)

        if self.primary is not self.engine:
            replica.wait_replayed(self.primary, self.engine)
        cutoff = datetime.now(UTC) - since
        summary.orders.total = self.count_orders(product_ids, cutoff)
        report("orders", 0, summary.orders.total)
        for page in self.order_pages(product_ids, cutoff):
            summary.orders.written += self.write_orders(page)
            summary.orders.done += len(page)
            # orders updated while it runs may join: the total grows with them
            summary.orders.total = max(summary.orders.total, summary.orders.done)
            report("orders", summary.orders.done, summary.orders.total)
        summary.seconds = time.monotonic() - started
        return summary


@click.group()
def readmodel() -> None:
    """The Redis read model."""


@readmodel.command()
@click.option(
    "--product", "product_ids", multiple=True, help="only these products and their orders"
)
@click.option(
    "--since-hours",
    type=float,
    default=FINAL_ORDER_TTL_S / 3600,
    show_default=True,
    help="orders updated within this many hours (Redis keeps a final order a day)",
)
def rebuild(product_ids: tuple[str, ...], since_hours: float) -> None:
    """Write products and final orders into Redis again from the stock table and PostgreSQL.

    Safe on a live stack: a value Redis holds that is newer than the durable record's is kept.
    Idempotent: rerun it after an interruption."""

    def progress(what: str, done: int, total: int) -> None:
        click.echo(f"{what}: {done}/{total}")

    with Rebuilder(Settings.from_env()) as rebuilder:
        summary = rebuilder.run(list(product_ids) or None, timedelta(hours=since_hours), progress)
    click.echo(str(summary))
