"""Bearer keys, admin routes, public reads, per-key rate limit."""

from __future__ import annotations

import pytest
from ingress_fakes import ADMIN_AUTH, STORE, Harness, order_body, with_key


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic c2s6"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_bad_credentials_are_401(h: Harness, headers: dict[str, str]) -> None:
    r = h.client.simulate_post("/v1/orders", json=order_body(("a", 1)), headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json["type"].endswith("unauthorized")
    assert h.publisher.sent == []


def test_the_scheme_is_case_insensitive(h: Harness) -> None:
    r = h.client.simulate_post(
        "/v1/orders",
        json=order_body(("a", 1)),
        headers=with_key({"Authorization": "bearer sk-test-storefront"}),
    )
    assert r.status_code == 202


def test_storefront_key_on_an_admin_route_is_403(h: Harness) -> None:
    r = h.client.simulate_put(
        "/v1/products/sku-1", json={"name": "n", "price": "1.00"}, headers=STORE
    )
    assert r.status_code == 403
    assert h.publisher.sent == []


def test_no_key_on_an_admin_route_is_401(h: Harness) -> None:
    assert h.client.simulate_delete("/v1/products/sku-1").status_code == 401


def test_admin_key_is_accepted_on_storefront_routes(h: Harness) -> None:
    r = h.client.simulate_post(
        "/v1/orders", json=order_body(("a", 1)), headers=with_key(ADMIN_AUTH)
    )
    assert r.status_code == 202


def test_product_reads_and_ops_are_public(h: Harness) -> None:
    assert h.client.simulate_get("/v1/products").status_code == 200
    assert h.client.simulate_get("/healthz").status_code == 200
    assert h.client.simulate_get("/v1/openapi.json").status_code == 200


def test_unconfigured_keys_never_match(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(storefront_key="", admin_key="")
    r = h.client.simulate_post(
        "/v1/orders", json=order_body(("a", 1)), headers={"Authorization": "Bearer "}
    )
    assert r.status_code == 401


def test_over_the_rate_limit_is_429_with_retry_after(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(rate_limit_per_second=3)
    statuses = [h.client.simulate_get("/v1/orders/" + "0" * 32, headers=STORE) for _ in range(10)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json["type"].endswith("rate-limited")
    # the window is one second; at most one window boundary can be crossed in this loop
    assert len(limited) >= 10 - 2 * 3
