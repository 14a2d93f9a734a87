"""The OpenAPI 3.1 document, built from the same msgspec request types the code decodes.

Settings-dependent limits (lines per order, units per line, long-poll bound, body size)
are written in from the running ``Settings`` so the spec matches what the server enforces.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from ingress.credentials import LoginRequest, RefreshRequest, RegisterRequest
from ingress.validation import (
    DEFAULT_PAGE,
    IDEMPOTENCY_KEY,
    MAX_PAGE,
    OrderRequest,
    ProductUpsert,
    RestockRequest,
)
from orderstream.core.settings import Settings
from schemas.orders import REFUSAL_REASONS

REF = "#/components/schemas/{name}"
MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["19.99"]}
PRODUCT_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


RESPONSE_SCHEMAS: dict[str, Any] = {
    "Problem": _obj(
        ["type", "title", "status", "detail"],
        type={"type": "string"},
        title={"type": "string"},
        status={"type": "integer"},
        detail={"type": "string"},
        errors={
            "type": "array",
            "items": _obj(
                ["field", "message"], field={"type": "string"}, message={"type": "string"}
            ),
        },
        reason={
            "enum": sorted(REFUSAL_REASONS),
            "description": "an order refused by the sold-out gate (409): why",
        },
        line_no={"type": "integer", "description": "refused order: the line that cannot be filled"},
        product_id={"type": "string", "description": "refused order: the line's product"},
        quantity={"type": "integer", "description": "refused order: the units the line asks"},
        available={"type": "integer", "description": "refused order: units the read model shows"},
        limit={
            "type": "integer",
            "description": "refused order: the product's per-customer limit (when it has one)",
        },
        order_id={
            "type": "string",
            "description": "outcome-unknown (503): the order a retry with the same "
            "Idempotency-Key and body answers for",
        },
    ),
    "OrderAccepted": _obj(
        ["order_id", "status"], order_id={"type": "string"}, status={"const": "accepted"}
    ),
    "Order": _obj(
        ["order_id", "status", "items"],
        order_id={"type": "string"},
        status={"enum": ["accepted", "committed", "shipped", "rejected", "cancelled"]},
        reason={"type": "string"},
        items={
            "type": "array",
            "items": _obj(
                ["product_id", "quantity", "unit_price"],
                product_id={"type": "string"},
                quantity={"type": "integer"},
                unit_price={
                    "anyOf": [MONEY, {"type": "null"}],
                    "description": "known once committed",
                },
            ),
        },
        total=MONEY,
    ),
    "CancelAccepted": _obj(
        ["order_id", "status", "cancellation"],
        order_id={"type": "string"},
        status={"type": "string", "description": "the status when the request arrived"},
        cancellation={"const": "requested"},
    ),
    "Product": _obj(
        ["product_id", "name", "price", "available", "active"],
        product_id={"type": "string"},
        name={"type": "string"},
        price=MONEY,
        available={"type": "integer"},
        active={"type": "boolean"},
        limit_per_customer={"anyOf": [{"type": "integer"}, {"type": "null"}]},
    ),
    "ProductList": _obj(
        ["items", "next"],
        items={"type": "array", "items": {"$ref": REF.format(name="Product")}},
        next={
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "pass as ?after= for the next page; null on the last page",
        },
    ),
    "CommandAccepted": _obj(
        ["command_id", "product_id", "type"],
        command_id={"type": "string"},
        product_id={"type": "string"},
        type={"enum": ["upsert_product", "restock", "discontinue"]},
    ),
    "Customer": _obj(
        ["customer_id", "email", "name", "created_at"],
        customer_id={"type": "string"},
        email={"type": "string"},
        name={"type": "string"},
        created_at={"type": "string", "format": "date-time"},
    ),
    "TokenResponse": {
        **_obj(
            ["access_token", "token_type", "expires_in", "refresh_token"],
            access_token={"type": "string", "description": "an ES256 JWT (RFC 9068 at+jwt)"},
            token_type={"const": "Bearer"},
            expires_in={"type": "integer", "description": "seconds the access token lives"},
            refresh_token={
                "type": "string",
                "description": "opaque; used up by POST /v1/auth/refresh, which returns the next",
            },
        ),
        "description": "The OAuth 2.0 token response (RFC 6749 §5.1)",
    },
    "Jwks": _obj(
        ["keys"],
        keys={
            "type": "array",
            "items": _obj(
                ["kty", "kid", "alg"],
                kty={"const": "EC"},
                crv={"const": "P-256"},
                x={"type": "string"},
                y={"type": "string"},
                kid={"type": "string"},
                alg={"const": "ES256"},
                use={"const": "sig"},
            ),
        },
    ),
    "OrderHistory": _obj(
        ["items", "next"],
        items={
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": REF.format(name="Order")},
                    _obj(["created_at"], created_at={"type": "string", "format": "date-time"}),
                ]
            },
        },
        next={
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "pass as ?after= for the next (older) page; null on the last page",
        },
    ),
    "Health": _obj(["status"], status={"type": "string"}),
    "Ready": _obj(
        ["status", "checks"],
        status={"enum": ["ready", "unavailable"]},
        checks={"type": "object", "additionalProperties": {"type": "boolean"}},
    ),
}

PROBLEMS = {
    "400": "Malformed JSON",
    "401": "No or bad credentials (an invalid access token: invalid-token)",
    "403": "Not allowed with these credentials (the admin key, or a customer's token, is needed)",
    "404": "Not found",
    "409": (
        "Conflict: an order no longer cancellable, or (POST /v1/orders) an order refused at the"
        " door because the read model shows a line's product sold out (reason out_of_stock),"
        " discontinued, or limited per customer to fewer units than the line asks"
        " (limit_exceeded); a refused order was not accepted and nothing of it was kept"
    ),
    "413": "Body too large",
    "415": "Not JSON",
    "422": "Invalid fields, or an Idempotency-Key reused with another body",
    "429": "Rate limited (see Retry-After)",
    "503": "Kafka or a store is unavailable; nothing was accepted (see Retry-After)",
}

COMMAND_PROBLEMS = {
    "503": (
        "unavailable: Redis was unreachable; nothing was sent. outcome-unknown: Kafka did not"
        " acknowledge the command in time and may still apply it; retry with the same"
        " Idempotency-Key and body to have it applied once (see Retry-After)"
    ),
}

# POST /v1/orders: what each answer means and what a storefront does next
PLACE_DESCRIPTION = """Needs the storefront key and an Idempotency-Key: a fresh one per order,
the same one (with the same body) on every retry of that order. A key names one order for
{ttl}; it never buys twice.

What to do on each answer:
- 202 / 201: accepted, exactly once; the order will reach one final status (read it at
  `Location`, or ask `Prefer: wait=N`).
- 409 with a `reason`: refused at the door (sold out, discontinued, over the limit); nothing
  was accepted. Retrying the same key after a restock may succeed.
- 503 `unavailable`: nothing was sent; retry the same request after `Retry-After`.
- 503 `outcome-unknown`: Kafka did not acknowledge the order in time and may still take it.
  The problem names `order_id` (and `Location`). Retry the same request (same key, same body)
  after `Retry-After`: the retry answers for that same order, never a second one.
- A dropped connection or a timeout: retry the same request, as for `outcome-unknown`.
- 429: retry after `Retry-After`. 400, 401, 403, 413, 415, 422: fix the request; retrying it
  unchanged gets the same answer.
"""

PLACE_PROBLEMS = {
    "400": "Malformed JSON (malformed-json), or no Idempotency-Key (idempotency-key-missing)",
    "403": "A customer's token with a body `customer_id` naming another customer",
    "503": (
        "unavailable: Redis was unreachable before anything was sent; nothing was accepted."
        " outcome-unknown: Kafka did not acknowledge every line in time and may still take"
        " them; the problem carries order_id and a Location, and a retry with the same"
        " Idempotency-Key and body answers for that same order (see Retry-After)"
    ),
}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h"


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=schema)}}}


def _op(
    summary: str,
    ok: str,
    ok_schema: str | None,
    problems: str,
    *,
    auth: str | None = None,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    described: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An operation; ``described`` overrides the shared descriptions of problem codes."""
    responses: dict[str, Any] = {ok: {"description": summary}}
    if ok_schema:
        responses[ok]["content"] = _json(ok_schema)
    for code in problems.split():
        responses[code] = {
            "description": (described or {}).get(code, PROBLEMS[code]),
            "content": {
                "application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}
            },
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    op["security"] = [{"bearer": []}] if auth else []
    if auth:
        op["description"] = f"Needs the {auth} key."
    if body:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


OPERATION_IDS = {
    ("post", "/v1/orders"): "placeOrder",
    ("get", "/v1/orders/{order_id}"): "getOrder",
    ("post", "/v1/orders/{order_id}/cancel"): "cancelOrder",
    ("get", "/v1/products"): "listProducts",
    ("get", "/v1/products/{product_id}"): "getProduct",
    ("put", "/v1/products/{product_id}"): "upsertProduct",
    ("delete", "/v1/products/{product_id}"): "discontinueProduct",
    ("post", "/v1/products/{product_id}/restock"): "restockProduct",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("get", "/metrics"): "metrics",
    ("get", "/v1/openapi.json"): "openapi",
    ("post", "/v1/auth/register"): "register",
    ("post", "/v1/auth/login"): "login",
    ("post", "/v1/auth/refresh"): "refresh",
    ("post", "/v1/auth/logout"): "logout",
    ("get", "/v1/auth/me"): "me",
    ("get", "/.well-known/jwks.json"): "jwks",
    ("get", "/v1/customers/me/orders"): "myOrders",
    ("get", "/v1/customers/{customer_id}/orders"): "customerOrders",
}

# who may call: the storefront (or admin) key, or a customer's access token
BUYER: list[dict[str, list[str]]] = [{"bearer": []}, {"customerToken": []}]
CUSTOMER: list[dict[str, list[str]]] = [{"customerToken": []}]

SIGN_IN = {
    "401": "Wrong email or password: the same answer whether or not the account exists",
}
REFRESH = {
    "401": (
        "The refresh token is unknown, expired, already used (which ends its session) or of a"
        " session that was logged out: sign in again"
    ),
}


def _customers(op: dict[str, Any], security: list[dict[str, list[str]]], who: str) -> None:
    op["security"] = security
    op["description"] = (op.get("description", "") + f"\n\n{who}").strip()


def _sign_in(settings: Settings) -> dict[str, Any]:
    """The paths of customers: sign-in, the public keys, the order history."""
    ttl = f"{settings.access_token_ttl_s // 60} minutes"
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    }
    after = {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "the previous page's `next` (opaque)",
        "schema": {"type": "string"},
    }
    customer_id = {
        "name": "customer_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:@-]{1,128}$"},
    }
    register = _op(
        "Register a customer",
        "201",
        "Customer",
        "400 409 413 415 422 429 503",
        body="RegisterRequest",
    )
    register["description"] = (
        "A password is 10 to 128 characters, not a common one and not the email; an email is"
        " registered once, without regard to case (409)."
    )
    login = _op(
        "Sign in",
        "200",
        "TokenResponse",
        "400 401 413 415 422 429 503",
        body="LoginRequest",
        described=SIGN_IN,
    )
    login["description"] = (
        f"An access token for {ttl} (send it as `Authorization: Bearer`), and a refresh token."
    )
    refresh = _op(
        "Exchange a refresh token for new tokens",
        "200",
        "TokenResponse",
        "400 401 413 415 422 429 503",
        body="RefreshRequest",
        described=REFRESH,
    )
    refresh["description"] = (
        "The refresh token is used up and a new one returned. Presenting a used one again ends"
        " the session (every refresh and access token of it)."
    )
    logout = _op("Sign out", "204", None, "400 413 415 422 429 503", body="RefreshRequest")
    logout["description"] = (
        "Ends the session of the refresh token (and of the access token, when one is sent):"
        " no more refreshes, and its access tokens are refused at once. 204 for an unknown"
        " token too."
    )
    me = _op("The signed-in customer", "200", "Customer", "401 403 404 429 503")
    _customers(me, CUSTOMER, "Needs a customer's access token.")
    mine = _op(
        "My orders, newest first, a page at a time",
        "200",
        "OrderHistory",
        "401 403 422 429 503",
        params=[limit, after],
    )
    _customers(mine, CUSTOMER, "Needs a customer's access token.")
    theirs = _op(
        "A customer's orders, newest first, a page at a time",
        "200",
        "OrderHistory",
        "401 404 422 429 503",
        params=[customer_id, limit, after],
    )
    _customers(
        theirs, BUYER, "The storefront key, or a customer's token for its own id (else 404)."
    )
    jwks = _op("The public keys of access tokens (JWKS, RFC 7517)", "200", "Jwks", "")
    return {
        "/v1/auth/register": {"post": register},
        "/v1/auth/login": {"post": login},
        "/v1/auth/refresh": {"post": refresh},
        "/v1/auth/logout": {"post": logout},
        "/v1/auth/me": {"get": me},
        "/.well-known/jwks.json": {"get": jwks},
        "/v1/customers/me/orders": {"get": mine},
        "/v1/customers/{customer_id}/orders": {"get": theirs},
    }


def build_spec(settings: Settings) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [
            OrderRequest,
            ProductUpsert,
            RestockRequest,
            RegisterRequest,
            LoginRequest,
            RefreshRequest,
        ],
        ref_template=REF,
    )
    components = copy.deepcopy(components)
    components["OrderRequest"]["properties"]["items"]["maxItems"] = settings.max_lines
    components["OrderLine"]["properties"]["quantity"]["maximum"] = settings.max_quantity
    components.update(RESPONSE_SCHEMAS)

    order_id = {
        "name": "order_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    product_id = {"name": "product_id", "in": "path", "required": True, "schema": PRODUCT_ID}
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": (
            "Required. One key per order; every retry of the order sends the same key and "
            f"body and gets the same order (for {_hours(settings.idempotency_ttl_s)}). "
            "Another body with a used key is 422."
        ),
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
    }
    command_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Optional. The same key, route and body make the same command, which the stock "
            "agent applies once: retry an unacknowledged command (503) with it."
        ),
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
    }
    wait = {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "Long-poll up to this many seconds for a status change.",
        "schema": {"type": "number", "minimum": 0, "maximum": settings.max_wait_s},
    }
    limits = "401 429 503"
    place = _op(
        "Place an order",
        "202",
        "OrderAccepted",
        f"400 403 409 413 415 422 {limits}",
        auth="storefront",
        body="OrderRequest",
        params=[idem],
        described=PLACE_PROBLEMS,
    )
    place["description"] = PLACE_DESCRIPTION.format(ttl=_hours(settings.idempotency_ttl_s))
    place["parameters"].append(
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": (
                "`wait=N` (RFC 7240): wait up to N seconds (at most "
                f"{settings.max_wait_s:g}) for the order's final status; 201 when it came"
            ),
            "schema": {"type": "string"},
        }
    )
    place["responses"]["201"] = {
        "description": "Prefer: wait=N and the order reached its final status in time",
        "headers": {
            "Location": {
                "description": "the order, `/v1/orders/{order_id}`",
                "schema": {"type": "string"},
            },
            "Preference-Applied": {
                "description": "`wait=N` as asked (RFC 7240)",
                "schema": {"type": "string"},
            },
        },
        "content": _json("Order"),
    }
    by_id = {"order_id": "$response.body#/order_id"}
    place["responses"]["202"]["links"] = {
        "GetOrder": {"operationId": "getOrder", "parameters": by_id},
        "CancelOrder": {"operationId": "cancelOrder", "parameters": by_id},
    }
    paths = {
        "/v1/orders": {"post": place},
        "/v1/orders/{order_id}": {
            "get": _op(
                "Read an order",
                "200",
                "Order",
                f"404 422 {limits}",
                auth="storefront",
                params=[order_id, wait],
            )
        },
        "/v1/orders/{order_id}/cancel": {
            "post": _op(
                "Cancel an order",
                "202",
                "CancelAccepted",
                f"404 409 {limits}",
                auth="storefront",
                params=[order_id],
            )
        },
        "/v1/products": {
            "get": _op(
                "List products, in product id order, a page at a time",
                "200",
                "ProductList",
                "422 503",
                params=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "the previous page's `next`",
                        "schema": PRODUCT_ID,
                    },
                ],
            )
        },
        "/v1/products/{product_id}": {
            "get": _op("Read a product", "200", "Product", "404 422 503", params=[product_id]),
            "put": _op(
                "Create or change a product",
                "202",
                "CommandAccepted",
                f"400 403 413 415 422 {limits}",
                auth="admin",
                body="ProductUpsert",
                params=[product_id, command_key],
                described=COMMAND_PROBLEMS,
            ),
            "delete": _op(
                "Discontinue a product",
                "202",
                "CommandAccepted",
                f"403 422 {limits}",
                auth="admin",
                params=[product_id, command_key],
                described=COMMAND_PROBLEMS,
            ),
        },
        "/v1/products/{product_id}/restock": {
            "post": _op(
                "Restock a product",
                "202",
                "CommandAccepted",
                f"400 403 413 415 422 {limits}",
                auth="admin",
                body="RestockRequest",
                params=[product_id, command_key],
                described=COMMAND_PROBLEMS,
            )
        },
        "/healthz": {"get": _op("Liveness", "200", "Health", "")},
        "/readyz": {
            "get": {
                **_op("Readiness (Kafka, Redis)", "200", "Ready", ""),
                "responses": {
                    "200": {"description": "ready", "content": _json("Ready")},
                    "503": {"description": "not ready", "content": _json("Ready")},
                },
            }
        },
        "/metrics": {
            "get": {
                **_op("Prometheus metrics", "200", None, ""),
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                **_op("This document", "200", None, ""),
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    for op in (place, paths["/v1/orders/{order_id}"]["get"]):
        _customers(op, BUYER, "Or a customer's access token: their own orders only (404 else).")
    _customers(
        paths["/v1/orders/{order_id}/cancel"]["post"],
        BUYER,
        "Or a customer's access token: their own orders only (404 else).",
    )
    place["description"] += (
        "\nUnder a customer's access token the body needs no `customer_id` (the token names"
        " the buyer); one naming another customer is 403.\n"
    )
    paths.update(_sign_in(settings))
    for path, ops in paths.items():
        for method, op in ops.items():
            op.setdefault("operationId", OPERATION_IDS.get((method, path), f"{method}{path}"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "orderstream ingress", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the storefront key (server to server) or the admin key",
                },
                "customerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a customer's access token from POST /v1/auth/login",
                },
            },
        },
    }
