"""Admin commands to inventory.commands and storefront cancellation."""

from __future__ import annotations

import uuid

import pytest
from ingress_fakes import ADMIN_AUTH, STORE, Harness, order_body

from orderstream.core.readmodel import SET_STATUS_LUA, Keys, status_args
from schemas import codec
from schemas.inventory import Discontinue, InventoryCommand, Restock, UpsertProduct
from schemas.orders import CancelOrder


def command(h: Harness) -> InventoryCommand:
    (message,) = h.publisher.sent
    assert message.topic == "inventory.commands"
    return codec.inventory_command_decoder.decode(message.value)  # type: ignore[no-any-return]


def test_put_product_publishes_an_upsert_keyed_by_product(h: Harness) -> None:
    r = h.client.simulate_put(
        "/v1/products/mug-1",
        json={"name": "Mug", "price": "9.50", "stock": 10, "limit_per_customer": 2},
        headers=ADMIN_AUTH,
    )
    assert r.status_code == 202
    cmd = command(h)
    assert isinstance(cmd, UpsertProduct)
    assert h.publisher.sent[0].key == b"mug-1"
    assert (cmd.name, str(cmd.price), cmd.stock, cmd.limit_per_customer) == ("Mug", "9.50", 10, 2)
    assert r.json == {"command_id": cmd.command_id, "product_id": "mug-1", "type": "upsert_product"}


@pytest.mark.parametrize("description", ["Stoneware, 350 ml.\n" + "x" * 1981, None, ""])
def test_put_product_carries_its_description(h: Harness, description: str | None) -> None:
    """Up to 2000 characters; none (or empty) is null: an upsert replaces the product's."""
    body = {"name": "Mug", "price": "9.50"}
    if description is not None:
        body["description"] = description
    r = h.client.simulate_put("/v1/products/mug-1", json=body, headers=ADMIN_AUTH)
    assert r.status_code == 202
    cmd = command(h)
    assert isinstance(cmd, UpsertProduct)
    assert cmd.description == (description or None)


def test_a_description_over_2000_characters_is_422_naming_it(h: Harness) -> None:
    body = {"name": "Mug", "price": "9.50", "description": "x" * 2001}
    r = h.client.simulate_put("/v1/products/mug-1", json=body, headers=ADMIN_AUTH)
    assert r.status_code == 422
    assert [e["field"] for e in r.json["errors"]] == ["description"]
    assert h.publisher.sent == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Mug", "price": 9.5},
        {"name": "Mug"},
        {"name": "", "price": "1"},
        {"name": "M", "price": "1", "stock": -1},
    ],
)
def test_put_product_rejects_bad_bodies(h: Harness, body: dict[str, object]) -> None:
    assert (
        h.client.simulate_put("/v1/products/mug-1", json=body, headers=ADMIN_AUTH).status_code
        == 422
    )
    assert h.publisher.sent == []


def test_restock_and_delete(h: Harness) -> None:
    r = h.client.simulate_post(
        "/v1/products/mug-1/restock", json={"quantity": 5}, headers=ADMIN_AUTH
    )
    assert r.status_code == 202
    restock = command(h)
    assert isinstance(restock, Restock) and restock.quantity == 5
    h.publisher.sent.clear()
    assert h.client.simulate_delete("/v1/products/mug-1", headers=ADMIN_AUTH).status_code == 202
    assert isinstance(command(h), Discontinue)


def test_restock_needs_a_positive_quantity(h: Harness) -> None:
    r = h.client.simulate_post(
        "/v1/products/mug-1/restock", json={"quantity": 0}, headers=ADMIN_AUTH
    )
    assert r.status_code == 422


def test_a_command_kafka_does_not_ack_is_503_outcome_unknown(h: Harness) -> None:
    h.publisher.fail_after = 0
    r = h.client.simulate_delete("/v1/products/mug-1", headers=ADMIN_AUTH)
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert r.json["type"].endswith("outcome-unknown")


def test_a_retried_command_with_its_idempotency_key_is_the_same_command(h: Harness) -> None:
    def restock(key: str | None, quantity: int = 5) -> str:
        headers = ADMIN_AUTH if key is None else {**ADMIN_AUTH, "Idempotency-Key": key}
        r = h.client.simulate_post(
            "/v1/products/mug-1/restock", json={"quantity": quantity}, headers=headers
        )
        assert r.status_code == 202
        return str(r.json["command_id"])

    # the stock agent applies a command id once: the retry is not a second restock
    assert restock("r-1") == restock("r-1")
    assert restock("r-1", quantity=6) != restock("r-1")
    assert restock(None) != restock(None)


def set_status(h: Harness, order_id: str, status: str) -> None:
    keys = Keys()
    h.redis.eval(
        SET_STATUS_LUA,
        2,
        keys.order(order_id),
        keys.order_channel(order_id),
        *status_args(status, {}),
    )


def cancel(h: Harness, order_id: str):  # type: ignore[no-untyped-def]
    return h.client.simulate_post(f"/v1/orders/{order_id}/cancel", headers=STORE)


def test_cancel_publishes_a_cancel_order_keyed_by_order(h: Harness) -> None:
    order_id = h.post_order(order_body(("a", 1))).json["order_id"]
    h.publisher.sent.clear()
    r = cancel(h, order_id)
    assert r.status_code == 202
    (message,) = h.publisher.sent
    assert message.topic == "orders.cancellations"
    assert message.key == order_id.encode()
    assert codec.decode(message.value, CancelOrder).order_id == order_id


def test_cancel_of_an_unknown_order_is_404(h: Harness) -> None:
    assert cancel(h, uuid.uuid4().hex).status_code == 404


@pytest.mark.parametrize("status", ["shipped", "rejected"])
def test_cancel_once_shipped_or_rejected_is_409(h: Harness, status: str) -> None:
    order_id = uuid.uuid4().hex
    set_status(h, order_id, status)
    assert cancel(h, order_id).status_code == 409
    assert h.publisher.sent == []


def test_cancel_of_a_cancelled_order_is_202_again_without_publishing(h: Harness) -> None:
    order_id = uuid.uuid4().hex
    set_status(h, order_id, "cancelled")
    r = cancel(h, order_id)
    assert r.status_code == 202
    assert r.json["status"] == "cancelled"
    assert h.publisher.sent == []
