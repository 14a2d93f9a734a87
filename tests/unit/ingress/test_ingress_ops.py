"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from ingress_fakes import Harness, order_body


def test_healthz(h: Harness) -> None:
    assert h.client.simulate_get("/healthz").json == {"status": "ok"}


def test_readyz_reports_each_dependency(h: Harness) -> None:
    assert h.client.simulate_get("/readyz").status_code == 200
    h.publisher.is_ready = False
    r = h.client.simulate_get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"] == {"kafka": False, "redis": True}


def test_readyz_when_redis_is_down(h: Harness) -> None:
    h.server.connected = False
    r = h.client.simulate_get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"]["redis"] is False


def test_metrics_count_requests(h: Harness) -> None:
    h.post_order(order_body(("a", 1)))
    r = h.client.simulate_get("/metrics")
    assert r.status_code == 200
    assert "ingress_http_requests_total" in r.text
    assert "ingress_orders_accepted_total" in r.text


def test_openapi_document_describes_every_route_and_status(h: Harness) -> None:
    spec = h.client.simulate_get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    post = spec["paths"]["/v1/orders"]["post"]
    assert set(post["responses"]) == {
        *("201", "202", "400", "401", "403", "409", "413", "415", "422", "429", "503")
    }
    order_request = spec["components"]["schemas"]["OrderRequest"]
    assert order_request["additionalProperties"] is False
    assert order_request["properties"]["items"]["maxItems"] == h.settings.max_lines
    assert set(spec["paths"]) == {
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/cancel",
        "/v1/products",
        "/v1/products/{product_id}",
        "/v1/products/{product_id}/restock",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/me",
        "/.well-known/jwks.json",
        "/v1/customers/me/orders",
        "/v1/customers/{customer_id}/orders",
    }


def test_the_storefront_page_and_its_files_are_public_with_a_strict_policy(h: Harness) -> None:
    page = h.client.simulate_get("/shop")
    script = h.client.simulate_get("/shop/shop.js")

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/shop/shop.js">' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert '"/v1/orders"' in script.text
    assert h.client.simulate_get("/shop/").text == page.text  # trailing slash stripped
    missing = h.client.simulate_get("/shop/secret.py")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
