"""The chaos harness's own logic, without a stack: how a storefront reads each answer, its
backoff, stall spans against fault windows, and the invariant-7 checks on made-up runs."""

from __future__ import annotations

import json

from tests.chaos import checks
from tests.chaos.lag import Sample, longest_stall, outside, stalls
from tests.chaos.storefront import (
    ACCEPTED,
    REFUSED,
    UNEXPECTED,
    Answer,
    KeyLog,
    RetryPolicy,
    classify,
)


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_accepted_answers_name_their_order():
    assert classify(0, 1, 202, body(order_id="o1", status="accepted")).kind == ACCEPTED
    assert classify(0, 1, 201, body(order_id="o1", status="shipped")).order_id == "o1"
    assert classify(0, 1, 202, body(status="accepted")).kind == UNEXPECTED


def test_a_sold_out_refusal_is_final_and_an_in_flight_conflict_is_retried():
    refused = classify(0, 1, 409, body(reason="out_of_stock", line_no=0, available=0))
    assert (refused.kind, refused.detail) == (REFUSED, "out_of_stock")
    in_flight = classify(0, 1, 409, body(type="urn:orderstream:problem:idempotency-key-in-flight"))
    assert in_flight.kind == "in_flight"
    assert classify(0, 1, 409, body(type="urn:orderstream:problem:conflict")).kind == UNEXPECTED


def test_an_outcome_unknown_503_is_retried_and_remembers_the_order_it_named():
    problem = body(type="urn:orderstream:problem:outcome-unknown", order_id="o7")
    answer = classify(0, 1, 503, problem)
    assert (answer.kind, answer.order_id) == ("http_503", "o7")
    assert classify(0, 1, 500, b"oops").kind == "http_500"
    assert classify(0, 1, 400, body(type="x")).kind == UNEXPECTED


def test_backoff_grows_to_its_cap_and_never_undercuts_retry_after():
    policy = RetryPolicy(base_s=0.2, cap_s=5.0)
    assert all(0.1 <= policy.delay(0, None) <= 0.2 for _ in range(50))
    assert all(2.5 <= policy.delay(10, None) <= 5.0 for _ in range(50))
    assert all(policy.delay(0, 3.0) >= 3.0 for _ in range(50))


def test_outside_subtracts_overlapping_windows_once():
    assert outside(0, 10, []) == 10
    assert outside(0, 10, [(2, 4), (3, 6)]) == 6
    assert outside(0, 10, [(-5, 20)]) == 0


def samples(*rows: tuple[float, int, int]) -> list[Sample]:
    return [Sample(at, {0: (committed, end)}) for at, committed, end in rows]


def test_a_stall_is_waiting_records_without_committed_progress():
    run = samples((0, 5, 10), (5, 5, 12), (10, 5, 14), (20, 5, 15), (21, 15, 15))
    (stall,) = stalls(run, [])
    assert (stall.start, stall.end, stall.outside_s) == (0, 20, 20)
    # the same span, mostly inside a fault window (fault + recovery + session timeout)
    assert longest_stall(run, [(3, 18)]).outside_s == 5  # type: ignore[union-attr]


def test_progress_or_an_empty_backlog_ends_a_stall():
    moving = samples((0, 5, 10), (3, 6, 11), (6, 7, 12), (9, 8, 13))
    assert stalls(moving, []) == []
    idle = samples((0, 10, 10), (30, 10, 10))
    assert stalls(idle, []) == []


def log(key: str, customer: str, *answers: tuple[int, str | None]) -> KeyLog:
    entry = KeyLog(key, customer, [("P", 1)])
    kinds = {202: ACCEPTED, 503: "http_503"}
    entry.answers = [Answer(0, 0, status, kinds[status], order_id) for status, order_id in answers]
    return entry


def stored(status: str, customer: str) -> checks.StoredOrder:
    return checks.StoredOrder(status, customer, (("P", 1),))


def test_a_key_whose_answers_name_two_orders_is_a_violation():
    good = log("k1", "c1", (503, "o1"), (202, "o1"))
    bad = log("k2", "c2", (503, "o2"), (202, "o3"))
    assert len(checks.check_one_order_per_key([good, bad]).failures) == 1


def test_orders_nobody_was_told_of_may_only_hold_nothing():
    logs = [log("k1", "c1", (503, "o1"), (202, "o1")), log("k2", "c2", (503, None), (202, "o2"))]
    orders = {"o1": stored("shipped", "c1"), "o2": stored("shipped", "c2")}
    assert checks.check_told(logs, orders).ok
    orders["ghost-rejected"] = stored("rejected", "c2")
    orders["ghost-cancelled"] = stored("cancelled", "c2")
    assert checks.check_told(logs, orders).ok
    orders["ghost-shipped"] = stored("shipped", "c2")
    assert checks.check_told(logs, orders).failures[0].startswith("order ghost-shipped")


def test_a_key_owns_at_most_one_order_that_is_not_rejected():
    logs = [log("k1", "c1", (202, "o1"))]
    orders = {"o1": stored("shipped", "c1"), "dup": stored("rejected", "c1")}
    assert checks.check_one_order_per_key_stored(logs, orders).ok
    orders["ghost"] = stored("cancelled", "c1")
    assert len(checks.check_one_order_per_key_stored(logs, orders).failures) == 1


def test_an_accepted_order_without_a_terminal_row_is_lost():
    logs = [log("k1", "c1", (202, "o1")), log("k2", "c2", (202, "o2"))]
    orders = {"o1": stored("shipped", "c1")}
    (failure,) = checks.check_nothing_lost(logs, orders).failures
    assert "o2" in failure
