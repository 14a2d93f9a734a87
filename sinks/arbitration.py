"""Cancellation arbitration: PostgreSQL decides for orders the settler committed.

The settler cancels orders still pending and emits ``OrderCancelled`` itself. For an
order it already committed it ignores the cancel; the sink decides, from what
PostgreSQL holds, whether the cancel came in time (before the order was shipped).
"""

from __future__ import annotations

from typing import Literal

CommitDecision = Literal["ship", "cancel", "already_recorded"]
CancelDecision = Literal["record", "too_late", "already_final"]


def decide_commit(status_in_pg: str | None, cancel_requested: bool) -> CommitDecision:
    """What to do with an ``OrderCommitted``.

    An order already in PostgreSQL (any terminal status) is never written again: the
    event is a replay, or the order was settled otherwise. A cancel request recorded
    before the order arrived wins: the order is cancelled instead of shipped.
    """
    if status_in_pg is not None:
        return "already_recorded"
    return "cancel" if cancel_requested else "ship"


def decide_cancel_request(status_in_pg: str | None) -> CancelDecision:
    """What to do with a ``CancelOrder`` arriving at the sink.

    Shipped is too late; rejected or cancelled is already final; an order PostgreSQL
    does not hold yet gets a cancel request, honoured when its commit arrives.
    """
    if status_in_pg == "shipped":
        return "too_late"
    if status_in_pg is not None:
        return "already_final"
    return "record"
