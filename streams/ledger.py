"""Idempotent application of requests and commands to one partition's stock state.

Pure over a key/value ``StockState`` (a dict in tests, the batch cache over the Faust
table in the worker). At-least-once delivery means a message may be applied again on
top of state that already holds it, and a crash may leave a torn write (the line record
written, the product not). So:

* every line is recorded once per (order_id, line_no) with the source offset that
  decided it; a replay or duplicate re-emits the recorded result and never reserves
  again;
* ProductState and CustomerHolding remember the last source offsets applied to them;
  when a line record exists but a record has not seen its offset (torn write), the
  recorded decision is re-applied to that record only (healing), never re-decided;
* catalog commands apply once: skipped when their offset was applied or their
  command_id is among the product's recent ids (a re-sent command at a new offset);
* line records older than the retention are deleted (``prune_lines``), and the partition's
  ``PruneMark`` is raised to the highest request offset processed: requests are processed
  in offset order and each one finds or leaves its line record, so a request at or below
  the mark without a record was processed before and its record pruned. It is skipped (its
  decision left long ago), never decided again. A release of a pruned line releases
  nothing, and a request re-sent (a new offset) after its line was pruned is decided as
  new: the retention must outlast every way a line can still be released or re-sent (the
  settler's hold time; a cancel of a committed order the sink has not shipped yet).

Writes must reach the changelog lines first, then the prune mark and the deletions of
pruned lines, then customers, then products, so any prefix of the log is healable
(``stock.StockCache.write``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import msgspec

from orderstream.core.logs import context
from schemas.inventory import InventoryCommand, ReleaseLine
from schemas.orders import OrderLineRequested
from streams.decisions import apply_command, decide_reservation, release_hold, take_units
from streams.records import (
    CustomerHolding,
    LineState,
    ProductState,
    PruneMark,
    StockRecord,
    customer_key,
    line_key,
    product_key,
)

logger = logging.getLogger(__name__)
replace = msgspec.structs.replace
RECENT_COMMANDS = 64


class StockState(Protocol):
    def get(self, key: bytes) -> StockRecord | None: ...

    def set(self, key: bytes, record: StockRecord) -> None: ...

    def delete(self, key: bytes) -> None: ...


def on_request(
    state: StockState,
    request: OrderLineRequested,
    offset: int,
    now: datetime,
    mark_key: bytes | None = None,
) -> LineState | None:
    """Decide (or recall) one order line; returns the line record to emit, or None for a
    request decided before and pruned since (``mark_key``: the partition's PruneMark)."""
    lkey = line_key(request.order_id, request.line_no)
    line = state.get(lkey)
    if isinstance(line, LineState):
        if line.request_offset == offset and line.status != "rejected":
            _heal_hold(state, line, offset)
        return line
    if mark_key is not None and offset <= _mark(state.get(mark_key)):
        logger.info(
            "request %s/%s at %d was pruned: skipped",
            request.order_id,
            request.line_no,
            offset,
            extra=context(order_id=request.order_id, line_no=request.line_no, offset=offset),
        )
        return None
    pkey = product_key(request.product_id)
    ckey = customer_key(request.product_id, request.customer_id)
    product = _product(state.get(pkey))
    holding = _holding(state.get(ckey))
    new_product, line = decide_reservation(request, product, holding.held, now)
    line = replace(line, request_offset=offset)
    state.set(lkey, line)
    if line.status == "held" and new_product is not None:
        state.set(
            ckey, replace(holding, held=holding.held + line.quantity, applied_requests=offset)
        )
        state.set(pkey, replace(new_product, applied_requests=offset))
    return line


def on_command(state: StockState, command: InventoryCommand, offset: int) -> ProductState | None:
    """Apply one inventory command once; returns the product when it changed."""
    if isinstance(command, ReleaseLine):
        return _release(state, command, offset)
    pkey = product_key(command.product_id)
    product = _product(state.get(pkey))
    if product is not None and (
        offset <= product.applied_commands or command.command_id in product.recent_commands
    ):
        return None
    new_product = apply_command(command, product)
    if new_product is None:
        logger.info("%s for unknown product %s ignored", type(command).__name__, command.product_id)
        return None
    recent = (*new_product.recent_commands, command.command_id)[-RECENT_COMMANDS:]
    new_product = replace(new_product, applied_commands=offset, recent_commands=recent)
    state.set(pkey, new_product)
    return new_product


def _release(state: StockState, command: ReleaseLine, offset: int) -> ProductState | None:
    lkey = line_key(command.order_id, command.line_no)
    line = state.get(lkey)
    if not isinstance(line, LineState) or line.status == "rejected":
        return None
    if line.status == "released" and line.released_offset != offset:
        return None  # released once already; this is another release of the same line
    if line.status == "held":
        state.set(lkey, replace(line, status="released", released_offset=offset))
    pkey = product_key(line.product_id)
    ckey = customer_key(line.product_id, line.customer_id)
    product = _product(state.get(pkey))
    holding = _holding(state.get(ckey))
    if holding.applied_commands < offset:
        held = max(0, holding.held - line.quantity)
        state.set(ckey, replace(holding, held=held, applied_commands=offset))
    if product is not None and product.applied_commands < offset:
        product = replace(release_hold(product, line.quantity), applied_commands=offset)
        state.set(pkey, product)
        return product
    return None


def _heal_hold(state: StockState, line: LineState, offset: int) -> None:
    """Re-apply a recorded hold to the records a torn write left without it."""
    pkey = product_key(line.product_id)
    ckey = customer_key(line.product_id, line.customer_id)
    holding = _holding(state.get(ckey))
    if holding.applied_requests < offset:
        state.set(
            ckey, replace(holding, held=holding.held + line.quantity, applied_requests=offset)
        )
        logger.warning(
            "healed customer holding for %s/%s",
            line.order_id,
            line.line_no,
            extra=context(order_id=line.order_id, line_no=line.line_no, offset=offset),
        )
    product = _product(state.get(pkey))
    if product is not None and product.applied_requests < offset:
        state.set(pkey, replace(take_units(product, line.quantity), applied_requests=offset))
        logger.warning(
            "healed product %s for %s/%s",
            line.product_id,
            line.order_id,
            line.line_no,
            extra=context(
                order_id=line.order_id,
                line_no=line.line_no,
                product_id=line.product_id,
                offset=offset,
            ),
        )


def prune_lines(
    state: StockState,
    keys: Iterable[bytes],
    decided_before: datetime,
    mark_key: bytes,
    processed_up_to: int,
) -> int:
    """Delete the line records among ``keys`` decided before ``decided_before``; returns how
    many. The partition's PruneMark (``mark_key``) is raised to ``processed_up_to``, the
    highest request offset of the partition processed so far: a request re-sent at a later
    offset than its line's (a duplicate) is then also told from a new request. The mark must
    reach the changelog after the line records of every request up to it and before the
    deletions (``stock.StockCache.write``), so any restored prefix is consistent."""
    pruned = 0
    for key in keys:
        line = state.get(key)
        if not isinstance(line, LineState) or line.decided_at >= decided_before:
            continue
        state.delete(key)
        pruned += 1
    if pruned and processed_up_to > _mark(state.get(mark_key)):
        state.set(mark_key, PruneMark(request_offset=processed_up_to))
    return pruned


def _mark(record: StockRecord | None) -> int:
    return record.request_offset if isinstance(record, PruneMark) else -1


def _product(record: StockRecord | None) -> ProductState | None:
    return record if isinstance(record, ProductState) else None


def _holding(record: StockRecord | None) -> CustomerHolding:
    return record if isinstance(record, CustomerHolding) else CustomerHolding()
