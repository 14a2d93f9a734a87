"""Customers over the running stack: sign-in, buying as oneself, other customers' orders,
the order history, refresh rotation, reuse, logout; and every refusal changes nothing
(PostgreSQL, Redis and Kafka are looked at after it)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from kafka import KafkaConsumer, TopicPartition

from ingress.tokens import SigningKeys
from orderstream.client import OrderstreamClient
from orderstream.core.settings import Settings
from schemas import topics

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def http(stack: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.settings.ingress_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def rds(stack: Any) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.settings.redis_url)
    yield client
    client.close()


def email() -> str:
    return f"buyer-{uuid.uuid4().hex[:10]}@Example.com"


def register(http: httpx.Client, address: str, password: str = PASSWORD) -> dict[str, Any]:
    r = http.post("/v1/auth/register", json={"email": address, "password": password, "name": "A"})
    assert r.status_code == 201, r.text
    return r.json()


def login(http: httpx.Client, address: str, password: str = PASSWORD) -> dict[str, Any]:
    r = http.post("/v1/auth/login", json={"email": address, "password": password})
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    return r.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def order(
    http: httpx.Client, headers: dict[str, str], body: dict[str, Any], wait: int = 0
) -> httpx.Response:
    extra = {"Prefer": f"wait={wait}"} if wait else {}
    return http.post(
        "/v1/orders",
        json=body,
        headers={**headers, **extra, "Idempotency-Key": uuid.uuid4().hex},
    )


def counts(pg: sa.Engine) -> dict[str, int]:
    with pg.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("customers", "customer_sessions", "refresh_tokens", "orders")
        }


def session_state(pg: sa.Engine, customer_id: str) -> list[tuple[Any, ...]]:
    with pg.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT s.session_id, s.revoked_reason, count(t.token_hash),"
                    " count(t.used_at) FROM customer_sessions s"
                    " LEFT JOIN refresh_tokens t USING (session_id)"
                    " WHERE s.customer_id = :c GROUP BY 1, 2 ORDER BY 1"
                ),
                {"c": customer_id},
            )
        ]


def test_a_customer_buys_as_themselves_and_sees_only_their_own_orders(
    http: httpx.Client,
    api: OrderstreamClient,
    pg: sa.Engine,
    stocked: Callable[..., str],
) -> None:
    product = stocked("cust-buy", 50, price="5.00")
    address = email()
    me = register(http, address)
    assert set(me) == {"customer_id", "email", "name", "created_at"}
    tokens = login(http, address.lower())  # the email is matched without regard to case
    assert tokens["token_type"] == "Bearer" and 300 <= tokens["expires_in"] <= 900
    auth = bearer(tokens)
    assert http.get("/v1/auth/me", headers=auth).json() == me

    # the buyer is the token's subject; the body may repeat it, never name another
    first = order(http, auth, {"items": [{"product_id": product, "quantity": 1}]}, wait=20)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "shipped"
    same = order(
        http,
        auth,
        {"customer_id": me["customer_id"], "items": [{"product_id": product, "quantity": 1}]},
    )
    assert same.status_code == 202, same.text
    before = counts(pg)
    other = order(
        http,
        auth,
        {"customer_id": "someone-else", "items": [{"product_id": product, "quantity": 1}]},
    )
    assert other.status_code == 403, other.text

    # another customer (and a storefront order for anyone) is invisible: 404, not 403
    stranger = bearer(login(http, register(http, email())["email"]))
    mine = first.json()["order_id"]
    assert http.get(f"/v1/orders/{mine}", headers=stranger).status_code == 404
    assert http.post(f"/v1/orders/{mine}/cancel", headers=stranger).status_code == 404
    theirs = api.post_order("storefront-customer", [{"product_id": product, "quantity": 1}])
    assert http.get(f"/v1/orders/{theirs}", headers=auth).status_code == 404
    assert http.get(f"/v1/orders/{mine}", headers=auth).json()["status"] == "shipped"
    # the storefront key still reads every order
    assert api.order(mine) is not None
    api.wait_terminal(same.json()["order_id"])
    api.wait_terminal(theirs)
    after = counts(pg)
    assert after["orders"] == before["orders"] + 2  # `same` and `theirs`; not the 403


def test_the_purchase_limit_holds_under_a_customer_token(
    http: httpx.Client, api: OrderstreamClient, pg: sa.Engine, stocked: Callable[..., str]
) -> None:
    product = stocked("cust-limit", 20, limit=2)
    me = register(http, email())
    auth = bearer(login(http, me["email"]))
    line = {"product_id": product, "quantity": 1}
    decided = [order(http, auth, {"items": [line]}, wait=20).json() for _ in range(3)]
    assert [d["status"] for d in decided] == ["shipped", "shipped", "rejected"], decided
    assert decided[2]["reason"] == "limit_exceeded"
    # a body naming another customer cannot reset the count: 403, nothing placed
    assert order(http, auth, {"customer_id": "fresh-id", "items": [line]}).status_code == 403
    with pg.connect() as conn:
        held = conn.execute(
            sa.text(
                "SELECT coalesce(sum(i.quantity), 0) FROM orders o JOIN order_items i USING"
                " (order_id) WHERE o.customer_id = :c AND o.status = 'shipped'"
                " AND i.product_id = :p"
            ),
            {"c": me["customer_id"], "p": product},
        ).scalar_one()
    assert held == 2
    assert api.product(product)["available"] == 18


def test_history_is_paged_newest_first_with_orders_in_flight(
    stack: Any, http: httpx.Client, api: OrderstreamClient, stocked: Callable[..., str]
) -> None:
    product = stocked("cust-history", 50)
    me = register(http, email())
    auth = bearer(login(http, me["email"]))
    placed = []
    for _ in range(5):
        r = order(http, auth, {"items": [{"product_id": product, "quantity": 1}]})
        assert r.status_code == 202, r.text
        placed.append(r.json()["order_id"])
    # at once: some are still on their way (accepted or committed), none is missing
    page = http.get("/v1/customers/me/orders", params={"limit": 100}, headers=auth).json()
    assert [o["order_id"] for o in page["items"]] == placed[::-1]
    for n in placed:
        api.wait_terminal(n)
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        r = http.get("/v1/customers/me/orders", params=params, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [o["order_id"] for o in body["items"]]
        assert all(o["status"] == "shipped" and o["created_at"] for o in body["items"])
        after = body["next"]
        if after is None:
            break
    assert seen == placed[::-1]
    # the storefront key reads any customer's history; a customer only their own
    store = {"Authorization": f"Bearer {stack.settings.storefront_key}"}
    by_key = http.get(f"/v1/customers/{me['customer_id']}/orders", headers=store)
    assert [o["order_id"] for o in by_key.json()["items"]] == placed[::-1][:20]
    own = http.get(f"/v1/customers/{me['customer_id']}/orders", headers=auth)
    assert own.status_code == 200
    other = http.get("/v1/customers/storefront-customer/orders", headers=auth)
    assert other.status_code == 404


def test_refresh_rotates_reuse_revokes_the_family_and_logout_ends_the_session(
    http: httpx.Client, pg: sa.Engine, stocked: Callable[..., str]
) -> None:
    me = register(http, email())
    first = login(http, me["email"])
    second = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.headers["Cache-Control"] == "no-store"
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert http.get("/v1/auth/me", headers=bearer(rotated)).status_code == 200
    [(_, reason, tokens, used)] = session_state(pg, me["customer_id"])
    assert (reason, tokens, used) == (None, 2, 1)

    # the first token again: someone holds a copy. The whole family ends, and that use is 401
    reuse = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401, reuse.text
    [(_, reason, tokens, used)] = session_state(pg, me["customer_id"])
    assert (reason, tokens) == ("refresh_token_reused", 2)  # no token was made
    assert (
        http.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code
        == 401
    )
    me_after = http.get("/v1/auth/me", headers=bearer(rotated))
    assert me_after.status_code == 401
    assert 'error="invalid_token"' in me_after.headers["WWW-Authenticate"]

    # a new sign-in, then logout: no refresh, and its access token stops working at once
    fresh = login(http, me["email"])
    auth = bearer(fresh)
    assert http.get("/v1/auth/me", headers=auth).status_code == 200
    out = http.post("/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]})
    assert out.status_code == 204
    before = counts(pg)
    assert (
        http.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code
        == 401
    )
    assert http.get("/v1/auth/me", headers=auth).status_code == 401
    product = stocked("cust-logout", 5)
    placed = order(http, auth, {"items": [{"product_id": product, "quantity": 1}]})
    assert placed.status_code == 401
    assert counts(pg) == before
    # logout again is harmless
    assert (
        http.post("/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]}).status_code
        == 204
    )


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_every_refusal_leaves_nothing_behind(
    stack: Any,
    http: httpx.Client,
    pg: sa.Engine,
    rds: redis.Redis,
    stocked: Callable[..., str],
) -> None:
    product = stocked("cust-refusals", 5)
    address = email()
    me = register(http, address)
    good = login(http, address)
    kid = http.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    public_jwk = json.dumps(http.get("/.well-known/jwks.json").json()["keys"][0]).encode()
    claims = jwt.decode(good["access_token"], options={"verify_signature": False})
    header, _, signature = good["access_token"].split(".")
    stranger = ec.generate_private_key(ec.SECP256R1())
    bad_tokens = {
        "malformed": "a.b.c",
        "forged": jwt.encode(claims, stranger, "ES256", headers={"kid": kid, "typ": "at+jwt"}),
        "unknown kid": jwt.encode(claims, stranger, "ES256", headers={"kid": "x", "typ": "at+jwt"}),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{_b64(claims)}.",
        "hs256 with the public key": _hs256(claims, kid, public_jwk),
        "tampered": f"{header}.{_b64({**claims, 'sub': 'someone-else'})}.{signature}",
        "expired": _resigned_expired(claims),
    }
    line = {"items": [{"product_id": product, "quantity": 1}]}

    def register_as(address: str, password: str) -> httpx.Response:
        body = {"email": address, "password": password, "name": "B"}
        return http.post("/v1/auth/register", json=body)

    # (what, request, status, the field a 422 names)
    refusals: list[tuple[str, Callable[[], httpx.Response], int, str | None]] = [
        ("duplicate email", lambda: register_as(address.upper(), PASSWORD), 409, None),
        (
            "wrong password",
            lambda: http.post(
                "/v1/auth/login", json={"email": address, "password": PASSWORD + "x"}
            ),
            401,
            None,
        ),
        (
            "unknown email",
            lambda: http.post("/v1/auth/login", json={"email": email(), "password": PASSWORD}),
            401,
            None,
        ),
        *(
            (f"weak password {pw[:12]!r}", lambda pw=pw: register_as(email(), pw), 422, "password")
            for pw in ("short", "1234567890", "p" * 129, "é" * 400, "x" * 5000)
        ),
        (
            "password is the email",
            lambda: register_as("me@example.com", "me@example.com"),
            422,
            "password",
        ),
        ("bad email", lambda: register_as("no-at-sign", PASSWORD), 422, "email"),
        (
            "unknown refresh token",
            lambda: http.post("/v1/auth/refresh", json={"refresh_token": "nope"}),
            401,
            None,
        ),
        *(
            (
                f"{what} access token",
                lambda token=token: order(http, {"Authorization": f"Bearer {token}"}, line),
                401,
                None,
            )
            for what, token in bad_tokens.items()
        ),
    ]
    kafka_before = _requests_end_offsets(stack)
    redis_before = _order_keys(rds)
    for what, send, status, field in refusals:
        before = counts(pg)
        sessions = session_state(pg, me["customer_id"])
        r = send()
        assert r.status_code == status, (what, r.status_code, r.text)
        if what.endswith(" access token"):
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], what
        if field is not None:
            assert [e["field"] for e in r.json()["errors"]] == [field], what
        assert counts(pg) == before, what
        assert session_state(pg, me["customer_id"]) == sessions, what
    assert _order_keys(rds) <= redis_before
    assert _requests_end_offsets(stack) == kafka_before  # nothing was published


def _order_keys(rds: redis.Redis) -> set[bytes]:
    return set(rds.keys("os:order:*")) | set(rds.keys("os:customer-orders:*"))


def _hs256(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _resigned_expired(claims: dict[str, Any]) -> str:
    """The claims with ``exp`` in the past, signed with the stack's own key (the file the
    ingress reads): valid in every way but their age."""
    keys = SigningKeys.from_file(Settings.from_env().jwt_keys_file)
    now = int(time.time())
    old = {**claims, "iat": now - 3600, "nbf": now - 3600, "exp": now - 60}
    key = keys.signing
    return jwt.encode(old, key.private, "ES256", headers={"kid": key.kid, "typ": "at+jwt"})


def _requests_end_offsets(stack: Any) -> dict[int, int]:
    name = stack.settings.topics(topics.ORDER_REQUESTS)
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        assert parts
        return {tp.partition: offset for tp, offset in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()
