"""schemas.orders.refusal_reason: what the client, the demo and the load generator count as
an order refused at the door."""

from __future__ import annotations

import pytest

from schemas.orders import REFUSAL_REASONS, refusal_reason


@pytest.mark.parametrize("reason", sorted(REFUSAL_REASONS))
def test_a_409_with_a_gate_reason_is_a_refusal(reason: str) -> None:
    body = {"type": f"urn:orderstream:problem:{reason}", "reason": reason, "product_id": "p"}
    assert refusal_reason(409, body) == reason


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"type": "urn:orderstream:problem:idempotency-in-flight", "title": "in flight"}),
        (409, {"reason": "price_changed"}),  # a rejection reason, never a refusal at the door
        (409, {"reason": ["out_of_stock"]}),
        (409, None),
        (409, "out_of_stock"),
        (422, {"reason": "out_of_stock"}),
        (202, {"order_id": "o", "status": "accepted"}),
    ],
)
def test_anything_else_is_not(status: int, body: object) -> None:
    assert refusal_reason(status, body) is None
