"""``place_one`` reads a POST's answer: accepted (then follows it) or refused at the door."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from bench.loadgen import LoadConfig, OrderPath, OrderRequests, Target, place_one

TARGET = Target("orderstream", "http://127.0.0.1:18080", "shop-key", "admin-key")


class Scripted:
    """A connection that answers each request with the next scripted (status, body)."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    async def request(self, data: bytes, timeout_s: float, retry: bool = False) -> Any:
        self.sent.append(data)
        status, body = self.answers.pop(0)
        return SimpleNamespace(status=status, body=json.dumps(body).encode())


def place(conn: Scripted) -> Any:
    path = OrderPath.of_run(OrderRequests(TARGET), LoadConfig(), start=0.0)
    path = OrderPath(path.requests, answer_by=float("inf"), wait_s=1.0, timeout_s=1.0)
    return asyncio.run(place_one(conn, path, (("p1", 1),), customer=1))  # type: ignore[arg-type]


def test_a_refusal_at_the_door_is_the_final_answer() -> None:
    conn = Scripted((409, {"status": 409, "reason": "out_of_stock", "product_id": "p1"}))

    outcome = place(conn)

    assert (outcome.refused, outcome.answered, outcome.accepted) == (True, True, False)
    assert (outcome.final_status, outcome.reason) == ("rejected", "out_of_stock")
    assert outcome.refused_product == "p1"
    assert len(conn.sent) == 1  # no long-poll: there is no order to follow


def test_a_409_without_a_reason_is_not_an_answer() -> None:
    conn = Scripted((409, {"status": 409, "type": "urn:orderstream:problem:conflict"}))

    outcome = place(conn)

    assert (outcome.refused, outcome.answered, outcome.final_status) == (False, False, None)


def test_an_accepted_order_is_followed_to_its_final_status() -> None:
    conn = Scripted(
        (202, {"order_id": "o1", "status": "accepted"}),
        (200, {"order_id": "o1", "status": "shipped"}),
    )

    outcome = place(conn)

    assert (outcome.accepted, outcome.answered, outcome.final_status) == (True, True, "shipped")
    assert conn.sent[1].startswith(b"GET /v1/orders/o1?wait=")


def test_a_final_answer_in_the_post_needs_no_long_poll() -> None:
    conn = Scripted((201, {"order_id": "o1", "status": "rejected", "reason": "out_of_stock"}))

    outcome = place(conn)

    assert (outcome.accepted, outcome.answered, outcome.refused) == (True, True, False)
    assert (outcome.final_status, outcome.reason) == ("rejected", "out_of_stock")
    assert len(conn.sent) == 1


def test_the_post_carries_prefer_wait_unless_turned_off() -> None:
    with_wait = OrderRequests(TARGET, prefer_wait_s=10.0).post((("p1", 1),), 1)
    without = OrderRequests(TARGET).post((("p1", 1),), 1)
    assert b"\r\nPrefer: wait=10\r\n" in with_wait
    assert b"Prefer" not in without
