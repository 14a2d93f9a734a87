"""POST /v1/orders: one message per line keyed by product, 202 after acks, idempotency."""

from __future__ import annotations

import json

import msgspec
from ingress_fakes import STOREFRONT, Harness, order_body

from ingress.config import key_id
from ingress.idempotency import Stored
from orderstream.core.readmodel import Keys, decode_order
from schemas import codec
from schemas.common import event_id_for
from schemas.orders import OrderLineRequested, request_key_for, request_key_of


def test_accepts_an_order_as_one_message_per_line_keyed_by_product(h: Harness) -> None:
    r = h.post_order(order_body(("sku-a", 2), ("sku-b", 1), expected_total="30.00"))

    assert r.status_code == 202
    order_id = r.json["order_id"]
    assert r.json == {"order_id": order_id, "status": "accepted"}
    assert r.headers["Location"] == f"/v1/orders/{order_id}"
    assert len(order_id) == 32
    lines = [codec.decode(m.value, OrderLineRequested) for m in h.publisher.sent]
    assert [m.topic for m in h.publisher.sent] == ["orders.requests"] * 2
    assert [m.key for m in h.publisher.sent] == [b"sku-a", b"sku-b"]
    assert [(ln.line_no, ln.line_count, ln.product_id, ln.quantity) for ln in lines] == [
        (0, 2, "sku-a", 2),
        (1, 2, "sku-b", 1),
    ]
    assert lines[0].event_id == event_id_for(order_id, 0, "requested")
    assert {str(ln.expected_total) for ln in lines} == {"30.00"}
    assert {ln.order_id for ln in lines} == {order_id}


def test_writes_the_accepted_status_to_the_read_model(h: Harness) -> None:
    order_id = h.post_order(order_body(("sku-a", 2))).json["order_id"]

    stored = decode_order(h.redis.hgetall(Keys().order(order_id)))
    assert stored is not None
    assert stored["status"] == "accepted"
    assert stored["customer_id"] == "cust-1"
    assert stored["items"] == [{"product_id": "sku-a", "quantity": 2}]


def test_uses_the_topic_prefix(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(topic_prefix="t1.")
    h.post_order(order_body(("sku-a", 1)))
    assert h.publisher.sent[0].topic == "t1.orders.requests"


def test_a_retry_with_the_same_key_and_body_replays_the_same_order(h: Harness) -> None:
    first = h.post_order(order_body(("sku-a", 1)), key="k-1")
    second = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert second.status_code == 202
    assert second.json == first.json
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(h.publisher.sent) == 1


def test_the_same_key_with_another_body_is_422(h: Harness) -> None:
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    r = h.post_order(order_body(("sku-a", 2)), key="k-1")

    assert r.status_code == 422
    assert r.json["type"].endswith("idempotency-key-reused")
    assert len(h.publisher.sent) == 1


def test_keys_are_scoped_per_storefront_key(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness()
    first = h.post_order(order_body(("sku-a", 1)), key="k-1")
    # the admin key is another scope: the same Idempotency-Key is a new order there
    other = h.client.simulate_post(
        "/v1/orders",
        json=order_body(("sku-a", 1)),
        headers={"Authorization": "Bearer ak-test-admin", "Idempotency-Key": "k-1"},
    )
    assert other.status_code == 202
    assert other.json["order_id"] != first.json["order_id"]


def test_every_order_needs_an_idempotency_key(h: Harness) -> None:
    r = h.post_order(order_body(("sku-a", 1)), key=None)

    assert r.status_code == 400
    assert r.json["type"].endswith("idempotency-key-missing")
    assert r.json["errors"] == [{"field": "header:Idempotency-Key", "message": "required"}]
    assert h.publisher.sent == []
    assert h.redis.keys("os:order:*") == h.redis.keys("os:idem:*") == []


def test_the_order_id_starts_with_the_request_key(h: Harness) -> None:
    order_id = h.post_order(order_body(("sku-a", 1)), key="k-1").json["order_id"]
    assert request_key_of(order_id) == request_key_for(key_id(STOREFRONT), "k-1")


def test_a_retry_that_finds_the_claim_in_flight_takes_the_order_over(h: Harness) -> None:
    # as left by an attempt whose answer was lost: published, response never stored
    first = h.post_order(order_body(("sku-a", 1), ("sku-b", 2)), key="k-1")
    (key,) = h.redis.keys("os:idem:*")
    stored = msgspec.json.decode(h.redis.get(key), type=Stored)
    order_id = first.json["order_id"]
    h.redis.set(key, msgspec.json.encode(Stored(stored.fingerprint, "in_flight", order_id)))
    h.redis.delete(Keys().order(order_id))

    r = h.post_order(order_body(("sku-a", 1), ("sku-b", 2)), key="k-1")

    assert r.status_code == 202
    assert r.json == {"order_id": order_id, "status": "accepted"}
    lines = [codec.decode(m.value, OrderLineRequested) for m in h.publisher.sent]
    # the same lines again, with the same event ids: the pipeline dedupes them
    assert [(ln.order_id, ln.line_no, ln.event_id) for ln in lines[2:]] == [
        (ln.order_id, ln.line_no, ln.event_id) for ln in lines[:2]
    ]
    assert h.redis.hget(Keys().order(order_id), "status") == b"accepted"
    again = h.post_order(order_body(("sku-a", 1), ("sku-b", 2)), key="k-1")
    assert again.headers["Idempotent-Replayed"] == "true" and len(h.publisher.sent) == 4


def test_a_replay_leaves_no_read_model_entry_for_the_unused_order_id(h: Harness) -> None:
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    assert len(h.redis.keys("os:order:*")) == 1


def test_an_unacknowledged_publish_is_503_outcome_unknown_naming_the_order(h: Harness) -> None:
    h.publisher.fail_after = 0
    r = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert r.status_code == 503
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["Retry-After"]
    assert r.json["type"].endswith("outcome-unknown")
    order_id = r.json["order_id"]
    assert r.headers["Location"] == f"/v1/orders/{order_id}"
    # nobody can say it was accepted: the read model does not claim so
    assert h.redis.keys("os:order:*") == []
    # the claim stays, naming the order, for the key's whole life
    (key,) = h.redis.keys("os:idem:*")
    assert msgspec.json.decode(h.redis.get(key), type=Stored).token == order_id
    assert h.redis.ttl(key) > h.settings.idempotency_ttl_s - 60


def test_a_retry_after_an_unknown_outcome_converges_on_the_same_order(h: Harness) -> None:
    h.publisher.fail_after = 1  # the first line acked, the second not: outcome unknown
    unknown = h.post_order(order_body(("sku-a", 1), ("sku-b", 1)), key="k-1")
    h.publisher.fail_after = None

    r = h.post_order(order_body(("sku-a", 1), ("sku-b", 1)), key="k-1")

    assert unknown.status_code == 503 and r.status_code == 202
    assert r.json["order_id"] == unknown.json["order_id"]
    # nothing compensated: no cancellation, every line published again under the same id
    assert {m.topic for m in h.publisher.sent} == {"orders.requests"}
    lines = [codec.decode(m.value, OrderLineRequested) for m in h.publisher.sent]
    assert [(ln.order_id, ln.line_no) for ln in lines] == [
        (r.json["order_id"], 0),
        (r.json["order_id"], 0),
        (r.json["order_id"], 1),
    ]
    assert h.redis.hget(Keys().order(r.json["order_id"]), "status") == b"accepted"


def test_a_key_whose_claim_was_lost_gets_a_new_order_with_the_same_request_key(
    h: Harness,
) -> None:
    # (Redis lost the claim): the ingress cannot know the first order; PostgreSQL refuses a
    # second order of the request key (sinks), so the buyer is not charged twice
    first = h.post_order(order_body(("sku-a", 1)), key="k-1").json["order_id"]
    h.redis.delete(*h.redis.keys("os:idem:*"))

    second = h.post_order(order_body(("sku-a", 2)), key="k-1").json["order_id"]

    assert second != first and request_key_of(second) == request_key_of(first)


def test_redis_down_is_503_before_anything_is_published(h: Harness) -> None:
    h.server.connected = False  # fakeredis: every command raises ConnectionError
    r = h.post_order(order_body(("sku-a", 1)), key="k-1")
    assert r.status_code == 503
    assert h.publisher.sent == []


def test_response_is_json(h: Harness) -> None:
    r = h.post_order(order_body(("sku-a", 1)))
    assert r.headers["Content-Type"] == "application/json"
    assert json.loads(r.text)["status"] == "accepted"


# ADMIT_LUA's arguments for the customer's recent orders: placed at, order id, kept, ttl s
RECENT = (1, "o", 100, 60)


def test_the_intake_script_writes_accepted_as_the_read_model_script_does(h: Harness) -> None:
    # ADMIT_LUA runs SET_STATUS_LUA on its KEYS[1..2] and ARGV[4+n..]: same writes.
    from ingress.admission import ADMIT_LUA
    from orderstream.core.readmodel import SET_STATUS_LUA, status_args

    fields = {"customer_id": "c", "items": [{"product_id": "p", "quantity": 2}], "updated_at": "t"}
    args = status_args("accepted", fields)
    h.redis.eval(SET_STATUS_LUA, 2, "a:order", "a:channel", *args)
    h.redis.eval(
        ADMIT_LUA, 4, "b:order", "b:channel", "b:idem", "recent", "claim", 1000, 0, *RECENT, *args
    )
    assert h.redis.hgetall("a:order") == h.redis.hgetall("b:order")
    assert h.redis.ttl("b:order") == h.redis.ttl("a:order")
    assert h.redis.get("b:idem") == b"claim"
    assert 0 < h.redis.pttl("b:idem") <= 1000  # the claim's ttl is the caller's
    # forward only: a later status is not overwritten by "accepted"
    for key in ("a", "b"):
        h.redis.eval(SET_STATUS_LUA, 2, f"{key}:order", "ch", *status_args("committed", {}))
    h.redis.eval(SET_STATUS_LUA, 2, "a:order", "a:channel", *args)
    h.redis.eval(
        ADMIT_LUA, 4, "b:order", "b:channel", "b2:idem", "recent", "claim2", 1000, 0, *RECENT, *args
    )
    assert h.redis.hget("a:order", "status") == h.redis.hget("b:order", "status") == b"committed"


def test_the_intake_script_writes_nothing_when_another_request_holds_the_key(h: Harness) -> None:
    from ingress.admission import ADMIT_LUA
    from orderstream.core.readmodel import status_args

    args = status_args("accepted", {"customer_id": "c"})
    assert (
        h.redis.eval(ADMIT_LUA, 4, "o1", "c1", "idem", "recent", "mine", 1000, 0, *RECENT, *args)
        is None
    )
    assert (
        h.redis.eval(ADMIT_LUA, 4, "o2", "c2", "idem", "recent", "other", 1000, 0, *RECENT, *args)
        == b"mine"
    )
    assert h.redis.exists("o2") == 0
    # the same claim value again (a retried command whose reply was lost) is still ours
    assert (
        h.redis.eval(ADMIT_LUA, 4, "o1", "c1", "idem", "recent", "mine", 1000, 0, *RECENT, *args)
        is None
    )


def test_a_completed_key_is_kept_for_the_idempotency_ttl(h: Harness) -> None:
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    (key,) = h.redis.keys("os:idem:*")
    assert h.redis.ttl(key) > h.settings.idempotency_ttl_s - 60
    # and it still names the order (reconcile compares it with what PostgreSQL holds)
    order_id = msgspec.json.decode(h.redis.get(key), type=Stored).token
    assert order_id == h.redis.keys("os:order:*")[0].decode().rsplit(":", 1)[-1]


def test_prefer_wait_is_read_as_rfc_7240_says() -> None:
    from ingress.http import preferred_wait

    assert preferred_wait(None, 30) == 0
    assert preferred_wait("wait=5", 30) == 5
    assert preferred_wait("respond-async, wait=2.5", 30) == 2.5
    assert preferred_wait('WAIT="7"', 30) == 7
    assert preferred_wait("wait=600", 30) == 30  # capped by the server
    assert preferred_wait("wait=soon", 30) == 0  # unreadable: ignored
    assert preferred_wait("wait=-1", 30) == 0
    assert preferred_wait("return=minimal", 30) == 0


def test_prefer_wait_answers_202_when_no_final_status_comes_in_time(h: Harness) -> None:
    # no pipeline behind the fakes: the order stays accepted, so the POST waits, then says 202
    r = h.post_order(order_body(("sku-a", 1)), headers={"Prefer": "wait=0.2"})

    assert r.status_code == 202
    assert r.json == {"order_id": r.json["order_id"], "status": "accepted"}
    assert "Preference-Applied" not in r.headers


def test_prefer_wait_answers_201_with_the_final_order_when_it_comes(h: Harness) -> None:
    import threading
    import time

    from orderstream.core.readmodel import SET_STATUS_LUA, status_args

    def pipeline_decides() -> None:  # what the settler and the sink write, seen through Redis
        deadline = time.monotonic() + 5
        while not (keys := h.redis.keys("os:order:*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        order_id = keys[0].decode().rsplit(":", 1)[-1]
        time.sleep(0.1)
        for status in ("committed", "shipped"):
            args = status_args(status, {"total": "20.00"})
            h.redis.eval(SET_STATUS_LUA, 2, *_order_keys(order_id), *args)

    decider = threading.Thread(target=pipeline_decides)
    decider.start()
    r = h.post_order(order_body(("sku-a", 2)), headers={"Prefer": "wait=5"})
    decider.join()

    assert r.status_code == 201
    assert (r.json["status"], r.json["total"]) == ("shipped", "20.00")
    assert r.headers["Preference-Applied"] == "wait=5"
    assert r.headers["Location"] == f"/v1/orders/{r.json['order_id']}"


def _order_keys(order_id: str) -> tuple[str, str]:
    keys = Keys()
    return keys.order(order_id), keys.order_channel(order_id)
