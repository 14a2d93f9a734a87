"""Bounded property-based run of the OpenAPI document against the app on real Kafka/Redis:
no 5xx, and every status, content type, header and body is the one the spec declares.

``positive_data_acceptance`` is not checked: a schema-valid body is rightly refused when it
repeats a product (422), reuses an Idempotency-Key with another body (422) or is
rate-limited (429) - constraints JSON Schema cannot express. The customer-only operations
run with a customer's access token (registered and signed in first), the others with a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from falcon import testing
from falcon.util.sync import async_to_sync
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingress.accounts import SqlAccounts
from ingress.app import create_app
from ingress.publisher import KafkaPublisher
from ingress.tokens import SigningKeys, new_key_set
from orderstream.core.settings import Settings

PASSWORD = "correct horse battery staple"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def app(settings: Settings, ingress_redis: Any) -> Iterator[Any]:
    """The app with customers: the stack's PostgreSQL and a key set of its own."""
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    try:
        yield create_app(
            settings,
            publisher,
            ingress_redis,
            accounts=SqlAccounts(settings.database_url),
            signing_keys=SigningKeys(new_key_set()),
        )
    finally:
        async_to_sync(publisher.close)


def customer_token(app: Any) -> str:
    """A customer's access token, from registering and signing in through the app."""
    client = testing.TestClient(app)
    credentials = {"email": f"spec-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    assert (
        client.simulate_post("/v1/auth/register", json={**credentials, "name": "S"}).status_code
        == 201
    )
    return str(client.simulate_post("/v1/auth/login", json=credentials).json["access_token"])


def test_the_api_matches_its_spec(app: Any, settings: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    customer = customer_token(app)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        admin = operation.method.upper() in ("PUT", "DELETE") or operation.path.endswith("/restock")
        key = settings.admin_key if admin else settings.storefront_key
        # the customer-only operations with a customer's token, the others with a key
        only_customers = operation.path in ("/v1/auth/me", "/v1/customers/me/orders")
        headers = {"Authorization": f"Bearer {customer if only_customers else key}"}

        @given(case=operation.as_strategy())
        @hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)  # noqa: B023

        check()
        tested += 1
    assert tested == 19
