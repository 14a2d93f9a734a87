"""Bounded property-based run of the OpenAPI document against the app on real Kafka/Redis:
no 5xx, and every status, content type, header and body is the one the spec declares.

``positive_data_acceptance`` is not checked: a schema-valid body is rightly refused when it
repeats a product (422), reuses an Idempotency-Key with another body (422) or is
rate-limited (429) - constraints JSON Schema cannot express.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_api_matches_its_spec(client: Any, settings: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", client.app)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        admin = operation.method.upper() in ("PUT", "DELETE") or operation.path.endswith("/restock")
        headers = {
            "Authorization": f"Bearer {settings.admin_key if admin else settings.storefront_key}"
        }

        @given(case=operation.as_strategy())
        @hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)  # noqa: B023

        check()
        tested += 1
    assert tested == 11
