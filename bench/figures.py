"""The figures of a run, computed from what the client saw and the system's own durable records.

Pure functions, no I/O: the load generator records ``OrderOutcome``s, a ledger reads a
``DurableRecord`` from the system's database, and ``compute_figures`` turns both into one
``{figure: value}`` mapping for the summary.

An order's answer is **correct** when the client saw a terminal status and the durable
record agrees on the only thing that matters for stock: shipped (rows committed) or not.
A system that does not keep rows for rejected orders is consistent when it has no shipped
row for an order it answered ``rejected``.

An order **refused** at the door (orderstream's sold-out gate: a 409 whose problem body names
a reason, ``schemas.orders.REFUSAL_REASONS``) got its final answer in the POST and was never
accepted, so it has no order id and no record: it is a correct ``rejected`` answer, not a
failure. ``refused_stock_left`` counts ``out_of_stock`` refusals naming a product that still
had the units the refused line asked when the run ended (a discontinued or over-the-limit
refusal says nothing about stock): a gate that refused what it could have sold shows
there (so do refusals made while units were held by multi-line orders that the pipeline
rejected and released later, and units released after the read model was read).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from schemas.orders import REFUSED_HTTP_STATUS

TERMINAL = frozenset({"shipped", "rejected", "cancelled"})
ACCEPTED_HTTP = 202
FINAL_HTTP = 201  # Prefer: wait honoured: accepted, and the body is the order's final status
REFUSED_HTTP = REFUSED_HTTP_STATUS
NOT_STARTED = "not_started"  # error of an open-loop order that never got a connection


@dataclass
class OrderOutcome:
    """What the client saw for one order; times are seconds on one monotonic clock."""

    lines: tuple[tuple[str, int], ...]
    t_sent: float
    http_status: int = 0  # status of the POST; 0 when the connection failed
    order_id: str | None = None
    t_accepted: float | None = None
    final_status: str | None = None
    reason: str | None = None
    t_final: float | None = None
    error: str | None = None
    t_scheduled: float | None = None  # open loop: when the order was due; None in closed loop
    refused_product: str | None = None  # refused at the door: the product it named

    @property
    def t_start(self) -> float:
        """Where latency counts from: the scheduled time (open loop), else the POST."""
        return self.t_sent if self.t_scheduled is None else self.t_scheduled

    @property
    def accepted(self) -> bool:
        return self.http_status in (ACCEPTED_HTTP, FINAL_HTTP) and self.order_id is not None

    @property
    def refused(self) -> bool:
        """Refused at the door: the POST was the final answer (``rejected``, with a reason)."""
        return self.http_status == REFUSED_HTTP and self.final_status == "rejected"

    @property
    def answered(self) -> bool:
        return (
            (self.accepted or self.refused)
            and self.final_status in TERMINAL
            and self.t_final is not None
        )


@dataclass(frozen=True)
class DurableRecord:
    """What a system's own database says after the run.

    ``statuses``: order_id -> status, for the run's orders found in the database.
    ``committed_units``: product_id -> units in shipped (committed, not cancelled) orders.
    """

    statuses: Mapping[str, str] = field(default_factory=dict)
    committed_units: Mapping[str, int] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; NaN if empty."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile out of range: {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def oversold_units(committed: Mapping[str, int], stock: Mapping[str, int]) -> int:
    """Units committed beyond the stock each product was given (unstocked products: all of them)."""
    return sum(max(0, units - stock.get(product_id, 0)) for product_id, units in committed.items())


def is_correct(outcome: OrderOutcome, durable: Mapping[str, str]) -> bool:
    if outcome.refused:
        return outcome.answered  # never accepted: nothing durable to agree or disagree
    if not outcome.answered or outcome.order_id is None:
        return False
    shipped_durably = durable.get(outcome.order_id) == "shipped"
    return (outcome.final_status == "shipped") == shipped_durably


def is_lost(outcome: OrderOutcome, durable: Mapping[str, str]) -> bool:
    """Accepted, and neither the client nor the durable record ever saw a final answer."""
    if not outcome.accepted or outcome.answered or outcome.order_id is None:
        return False
    return durable.get(outcome.order_id) not in TERMINAL


def _could_fill_at_end(
    outcome: OrderOutcome, durable: DurableRecord, stock: Mapping[str, int]
) -> bool:
    """A refused order's product ended the run with at least the units its line asked."""
    product = outcome.refused_product
    asked = sum(q for p, q in outcome.lines if p == product)
    if product is None or asked == 0 or outcome.reason != "out_of_stock":
        return False
    return stock.get(product, 0) - durable.committed_units.get(product, 0) >= asked


def rate(count: int, start: float, end: float) -> float:
    span = end - start
    return count / span if span > 0 else 0.0


def latency_ms(outcome: OrderOutcome) -> float:
    """From the order's start (its scheduled time in open loop) to its final answer."""
    return ((outcome.t_final or 0.0) - outcome.t_start) * 1000


LOADGEN_COMPONENT = "loadgen"  # the client's own CPU, not the system's


def compute_figures(
    outcomes: Sequence[OrderOutcome],
    durable: DurableRecord,
    stock: Mapping[str, int],
    cpu_seconds: Mapping[str, float] | None = None,
) -> dict[str, float | int]:
    """All per-system figures for one scenario run."""
    statuses = durable.statuses
    first_sent = min((o.t_start for o in outcomes), default=0.0)
    accepted = [o for o in outcomes if o.accepted]
    correct = [o for o in outcomes if is_correct(o, statuses)]
    latencies_ms = [latency_ms(o) for o in correct]
    last_answer = max((o.t_final or 0.0 for o in correct), default=first_sent)
    last_accept = max((o.t_accepted or 0.0 for o in accepted), default=first_sent)
    figures: dict[str, float | int] = {
        "orders": len(outcomes),
        "accepted": len(accepted),
        "decided": len(correct),
        "shipped": sum(1 for o in correct if o.final_status == "shipped"),
        "rejected": sum(1 for o in correct if o.final_status == "rejected"),
        "decided_per_s": round(rate(len(correct), first_sent, last_answer), 2),
        "accepted_per_s": round(rate(len(accepted), first_sent, last_accept), 2),
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p90_ms": round(percentile(latencies_ms, 90), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "oversold": oversold_units(durable.committed_units, stock),
        "lost": sum(1 for o in outcomes if is_lost(o, statuses)),
        "wrong": sum(1 for o in outcomes if o.answered and not is_correct(o, statuses)),
        "unanswered": sum(1 for o in accepted if not o.answered),
        "failed": sum(1 for o in outcomes if not o.accepted and not o.refused),
        "refused": sum(1 for o in outcomes if o.refused),
        "refused_stock_left": sum(
            1 for o in outcomes if o.refused and _could_fill_at_end(o, durable, stock)
        ),
    }
    for component, seconds in sorted((cpu_seconds or {}).items()):
        figures[f"cpu_s_{component}"] = round(seconds, 2)
    system_cpu = sum(s for c, s in (cpu_seconds or {}).items() if c != LOADGEN_COMPONENT)
    if cpu_seconds and correct:
        figures["cpu_ms_per_order"] = round(system_cpu * 1000 / len(correct), 3)
    return figures


def failure_kinds(outcomes: Iterable[OrderOutcome]) -> dict[str, int]:
    """Failed POSTs by HTTP status or error class, for the report."""
    kinds: dict[str, int] = {}
    for o in outcomes:
        if o.accepted or o.refused:
            continue
        kind = f"http_{o.http_status}" if o.http_status else (o.error or "error")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def reason_counts(outcomes: Iterable[OrderOutcome]) -> dict[str, int]:
    """Final statuses with their reasons (``rejected:out_of_stock``), for the report."""
    counts: dict[str, int] = {}
    for o in outcomes:
        if o.answered:
            key = f"{o.final_status}:{o.reason}" if o.reason else str(o.final_status)
            counts[key] = counts.get(key, 0) + 1
    return counts


def throughput_series(
    outcomes: Sequence[OrderOutcome], durable: DurableRecord, bucket_s: float = 1.0
) -> list[int]:
    """Correct answers per time bucket since the first start (for the throughput plot)."""
    if not outcomes:
        return []
    start = min(o.t_start for o in outcomes)
    buckets: dict[int, int] = {}
    for o in outcomes:
        if is_correct(o, durable.statuses) and o.t_final is not None:
            index = int((o.t_final - start) // bucket_s)
            buckets[index] = buckets.get(index, 0) + 1
    size = max(buckets, default=-1) + 1
    return [buckets.get(i, 0) for i in range(size)]


def open_loop_figures(outcomes: Sequence[OrderOutcome]) -> dict[str, float]:
    """How far behind its schedule the open loop sent, and how many orders it never sent.

    ``start_lag_*_ms``: from each sent order's scheduled time to its POST (waiting for a free
    connection under the cap, or a busy load generator); ``not_started``: orders still waiting
    for a connection at the answer deadline.
    """
    lags = [
        (o.t_sent - o.t_scheduled) * 1000
        for o in outcomes
        if o.t_scheduled is not None and o.error != NOT_STARTED
    ]
    return {
        "start_lag_p50_ms": round(percentile(lags, 50), 2),
        "start_lag_p99_ms": round(percentile(lags, 99), 2),
        "not_started": sum(1 for o in outcomes if o.error == NOT_STARTED),
    }
