"""POST /v1/orders: one message per line keyed by product, 202 after acks, idempotency."""

from __future__ import annotations

import json

import msgspec
from ingress_fakes import Harness, order_body

from ingress.idempotency import Stored
from orderstream.readmodel import Keys, decode_order
from schemas import codec
from schemas.common import event_id_for
from schemas.orders import CancelOrder, OrderLineRequested


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


def test_a_key_still_in_flight_is_409(h: Harness) -> None:
    first = h.post_order(order_body(("sku-a", 1)), key="k-1")
    # make the stored record look in flight (as while another worker is publishing)
    (key,) = h.redis.keys("os:idem:*")
    stored = msgspec.json.decode(h.redis.get(key), type=Stored)
    h.redis.set(key, msgspec.json.encode(Stored(stored.fingerprint, "in_flight", "x")))

    r = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert first.status_code == 202
    assert r.status_code == 409
    assert r.headers["Retry-After"] == "1"
    assert r.json["status"] == 409


def test_a_replay_leaves_no_read_model_entry_for_the_unused_order_id(h: Harness) -> None:
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    assert len(h.redis.keys("os:order:*")) == 1


def test_kafka_failure_is_503_and_nothing_is_accepted(h: Harness) -> None:
    h.publisher.fail_after = 0
    r = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert r.status_code == 503
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["Retry-After"]
    assert h.redis.keys("os:order:*") == []
    assert not [m for m in h.publisher.sent if m.topic == "orders.requests"]


def test_a_failed_publish_releases_the_key_so_a_retry_succeeds(h: Harness) -> None:
    h.publisher.fail_after = 0
    assert h.post_order(order_body(("sku-a", 1)), key="k-1").status_code == 503
    h.publisher.fail_after = None

    r = h.post_order(order_body(("sku-a", 1)), key="k-1")

    assert r.status_code == 202
    assert [m.topic for m in h.publisher.sent].count("orders.requests") == 1


def test_a_partial_publish_is_compensated_with_a_cancel_order(h: Harness) -> None:
    h.publisher.fail_after = 1  # first line acked, second fails; the CancelOrder (1 msg) passes
    r = h.post_order(order_body(("sku-a", 1), ("sku-b", 1)))

    assert r.status_code == 503
    requested = [m for m in h.publisher.sent if m.topic == "orders.requests"]
    cancels = [m for m in h.publisher.sent if m.topic == "orders.cancellations"]
    assert len(requested) == 1
    (cancel,) = cancels
    order_id = codec.decode(requested[0].value, OrderLineRequested).order_id
    assert cancel.key == order_id.encode()
    assert codec.decode(cancel.value, CancelOrder).order_id == order_id


def test_redis_down_is_503_before_anything_is_published(h: Harness) -> None:
    h.server.connected = False  # fakeredis: every command raises ConnectionError
    r = h.post_order(order_body(("sku-a", 1)), key="k-1")
    assert r.status_code == 503
    assert h.publisher.sent == []


def test_response_is_json(h: Harness) -> None:
    r = h.post_order(order_body(("sku-a", 1)))
    assert r.headers["Content-Type"] == "application/json"
    assert json.loads(r.text)["status"] == "accepted"


def test_the_intake_script_writes_accepted_as_the_read_model_script_does(h: Harness) -> None:
    # ADMIT_LUA runs SET_STATUS_LUA on its KEYS[1..2] and ARGV[4+n..]: same writes.
    from ingress.admission import ADMIT_LUA
    from orderstream.readmodel import SET_STATUS_LUA, status_args

    fields = {"customer_id": "c", "items": [{"product_id": "p", "quantity": 2}], "updated_at": "t"}
    args = status_args("accepted", fields)
    h.redis.eval(SET_STATUS_LUA, 2, "a:order", "a:channel", *args)
    h.redis.eval(ADMIT_LUA, 3, "b:order", "b:channel", "b:idem", "claim", 1000, 0, *args)
    assert h.redis.hgetall("a:order") == h.redis.hgetall("b:order")
    assert h.redis.ttl("b:order") == h.redis.ttl("a:order")
    assert h.redis.get("b:idem") == b"claim"
    assert 0 < h.redis.pttl("b:idem") <= 1000  # the in-flight claim lapses
    # forward only: a later status is not overwritten by "accepted"
    for key in ("a", "b"):
        h.redis.eval(SET_STATUS_LUA, 2, f"{key}:order", "ch", *status_args("committed", {}))
    h.redis.eval(SET_STATUS_LUA, 2, "a:order", "a:channel", *args)
    h.redis.eval(ADMIT_LUA, 3, "b:order", "b:channel", "", "", 0, 0, *args)
    assert h.redis.hget("a:order", "status") == h.redis.hget("b:order", "status") == b"committed"
    assert h.redis.exists("") == 0  # no claim key without an Idempotency-Key


def test_the_intake_script_writes_nothing_when_another_request_holds_the_key(h: Harness) -> None:
    from ingress.admission import ADMIT_LUA
    from orderstream.readmodel import status_args

    args = status_args("accepted", {"customer_id": "c"})
    assert h.redis.eval(ADMIT_LUA, 3, "o1", "c1", "idem", "mine", 1000, 0, *args) is None
    assert h.redis.eval(ADMIT_LUA, 3, "o2", "c2", "idem", "other", 1000, 0, *args) == b"mine"
    assert h.redis.exists("o2") == 0
    # the same claim value again (a retried command whose reply was lost) is still ours
    assert h.redis.eval(ADMIT_LUA, 3, "o1", "c1", "idem", "mine", 1000, 0, *args) is None


def test_a_completed_key_is_kept_for_the_idempotency_ttl(h: Harness) -> None:
    h.post_order(order_body(("sku-a", 1)), key="k-1")
    (key,) = h.redis.keys("os:idem:*")
    # completed: kept for the idempotency TTL (the claim's short lock was replaced)
    assert h.redis.ttl(key) > h.settings.publish_timeout_s * 3 + 5


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

    from orderstream.readmodel import SET_STATUS_LUA, status_args

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
