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
    assert set(post["responses"]) == {"202", "400", "401", "409", "413", "415", "422", "429", "503"}
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
    }
