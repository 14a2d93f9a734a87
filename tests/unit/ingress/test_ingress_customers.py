"""Customers through the app with fakes: sign-in, tokens as credentials, whose orders a
customer sees, the Idempotency-Key scope, the rate limit per customer, the order history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fakeredis
import jwt
import msgspec
import pytest
from falcon import testing
from ingress_fakes import ADMIN, ADMIN_AUTH, STORE, STOREFRONT, FakeFallback, FakePublisher

from ingress.accounts import Credentials, Customer, Refresh
from ingress.app import create_app
from ingress.history import Position
from ingress.passwords import PasswordHasher
from ingress.tokens import SigningKeys, TokenAuthority, new_key_set
from orderstream.core.settings import Settings
from schemas.orders import OrderLineRequested

PASSWORD = "correct horse battery staple"


@dataclass
class FakeAccounts:
    """In memory, with the SQL store's rules (``ingress.accounts.SqlAccounts``)."""

    customers: dict[str, tuple[Customer, str]] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str | None]] = field(
        default_factory=dict
    )  # -> customer, revoked
    tokens: dict[str, tuple[str, datetime, datetime | None]] = field(default_factory=dict)

    def add_customer(self, customer: Customer, password_hash: str) -> bool:
        if any(c.email.lower() == customer.email.lower() for c, _ in self.customers.values()):
            return False
        self.customers[customer.customer_id] = (customer, password_hash)
        return True

    def credentials(self, email: str) -> Credentials | None:
        for customer, password_hash in self.customers.values():
            if customer.email.lower() == email.lower():
                return Credentials(customer, password_hash)
        return None

    def customer(self, customer_id: str) -> Customer | None:
        found = self.customers.get(customer_id)
        return None if found is None else found[0]

    def set_password_hash(self, customer_id: str, old: str, new: str) -> None:
        customer, stored = self.customers[customer_id]
        if stored == old:
            self.customers[customer_id] = (customer, new)

    def open_session(
        self, customer_id: str, session_id: str, token_hash: str, expires_at: datetime
    ) -> None:
        self.sessions[session_id] = (customer_id, None)
        self.tokens[token_hash] = (session_id, expires_at, None)

    def rotate(
        self, token_hash: str, new_hash: str, expires_at: datetime, now: datetime
    ) -> Refresh:
        found = self.tokens.get(token_hash)
        if found is None or self.sessions[found[0]][1] is not None:
            return Refresh("invalid")
        session_id, expires, used = found
        customer_id = self.sessions[session_id][0]
        if used is not None:
            self.revoke_session(session_id, "refresh_token_reused", now)
            return Refresh("reused", customer_id, session_id)
        if expires <= now:
            return Refresh("invalid")
        self.tokens[token_hash] = (session_id, expires, now)
        self.tokens[new_hash] = (session_id, expires_at, None)
        return Refresh("rotated", customer_id, session_id)

    def revoke(self, token_hash: str, reason: str, now: datetime) -> str | None:
        found = self.tokens.get(token_hash)
        if found is None:
            return None
        self.revoke_session(found[0], reason, now)
        return found[0]

    def revoke_session(self, session_id: str, reason: str, now: datetime) -> None:
        customer_id, revoked = self.sessions.get(session_id, ("?", None))
        if revoked is None and session_id in self.sessions:
            self.sessions[session_id] = (customer_id, reason)


@dataclass
class App:
    client: testing.TestClient
    redis: Any
    publisher: FakePublisher
    fallback: FakeFallback
    accounts: FakeAccounts
    tokens: TokenAuthority
    settings: Settings

    def token(self, customer_id: str, session_id: str = "s-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(customer_id, session_id)}"}

    def order(self, headers: dict[str, str], body: dict[str, Any], key: str | None = None) -> Any:
        headers = {**headers, "Idempotency-Key": key or uuid.uuid4().hex}
        return self.client.simulate_post("/v1/orders", json=body, headers=headers)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.simulate_post(path, json=body, **kw)


@pytest.fixture
def make_app() -> Callable[..., App]:
    def make(history: Any = None, **overrides: Any) -> App:
        settings = Settings(
            **{
                "storefront_key": STOREFRONT,
                "admin_key": ADMIN,
                "argon2_time_cost": 1,
                "argon2_memory_kib": 1024,
                **overrides,
            }
        )
        server = fakeredis.FakeServer()
        client = fakeredis.FakeAsyncRedis(server=server)
        publisher, fallback, accounts = FakePublisher(), FakeFallback(), FakeAccounts()
        keys = SigningKeys(new_key_set())
        app = create_app(
            settings,
            publisher,
            client,
            fallback=fallback,
            history=history,
            accounts=accounts,
            signing_keys=keys,
        )
        tokens = TokenAuthority(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
            leeway_s=settings.jwt_leeway_s,
        )
        redis = fakeredis.FakeRedis(server=server)
        return App(testing.TestClient(app), redis, publisher, fallback, accounts, tokens, settings)

    return make


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()


LINE = {"items": [{"product_id": "sku-1", "quantity": 1}]}


def written(app: App) -> list[bytes]:
    """The Redis keys but the rate limits' counters."""
    return [k for k in app.redis.keys("*") if not k.startswith(b"os:rl")]


def sent_lines(app: App) -> list[OrderLineRequested]:
    return [msgspec.json.decode(m.value, type=OrderLineRequested) for m in app.publisher.sent]


# -- a customer's token as the credential ----------------------------------------------


def test_a_customer_token_names_the_buyer(app: App) -> None:
    r = app.order(app.token("cust-a"), LINE)
    assert r.status_code == 202, r.text
    assert [line.customer_id for line in sent_lines(app)] == ["cust-a"]
    order_id = r.json["order_id"]
    assert app.redis.hget(f"os:order:{order_id}", "customer_id") == b"cust-a"
    assert app.order(app.token("cust-a"), {**LINE, "customer_id": "cust-a"}).status_code == 202


def test_a_body_naming_another_customer_is_403_and_nothing_is_kept(app: App) -> None:
    r = app.order(app.token("cust-a"), {**LINE, "customer_id": "cust-b"})
    assert r.status_code == 403, r.text
    assert app.publisher.sent == []
    assert written(app) == []  # no claim, no status, no history entry


def test_a_key_must_name_the_customer(app: App) -> None:
    r = app.order(STORE, LINE)
    assert r.status_code == 422
    assert [e["field"] for e in r.json["errors"]] == ["customer_id"]
    assert app.order(STORE, {**LINE, "customer_id": "c-1"}).status_code == 202


def test_another_customers_order_is_404_to_read_and_to_cancel(app: App) -> None:
    order_id = app.order(app.token("cust-a"), LINE).json["order_id"]
    sent = len(app.publisher.sent)
    other = app.token("cust-b")
    assert app.client.simulate_get(f"/v1/orders/{order_id}", headers=other).status_code == 404
    cancel = app.client.simulate_post(f"/v1/orders/{order_id}/cancel", headers=other)
    assert cancel.status_code == 404
    assert len(app.publisher.sent) == sent  # no CancelOrder
    mine = app.client.simulate_get(f"/v1/orders/{order_id}", headers=app.token("cust-a"))
    assert mine.status_code == 200 and mine.json["order_id"] == order_id
    assert app.client.simulate_get(f"/v1/orders/{order_id}", headers=STORE).status_code == 200


def test_a_settled_order_read_from_postgresql_is_still_its_customers_only(app: App) -> None:
    order_id = uuid.uuid4().hex
    app.fallback.orders[order_id] = {"customer_id": "cust-a", "status": "shipped", "items": []}
    path = f"/v1/orders/{order_id}"
    assert app.client.simulate_get(path, headers=app.token("cust-b")).status_code == 404
    assert app.client.simulate_get(path, headers=app.token("cust-a")).status_code == 200


def test_a_customer_token_is_no_admin_key(app: App) -> None:
    r = app.client.simulate_post(
        "/v1/products/sku-1/restock", json={"quantity": 1}, headers=app.token("cust-a")
    )
    assert r.status_code == 403
    assert app.publisher.sent == []


def test_idempotency_keys_are_the_customers_own(app: App) -> None:
    a = app.order(app.token("cust-a"), LINE, key="k-1")
    b = app.order(app.token("cust-b"), LINE, key="k-1")
    again = app.order(app.token("cust-a", "another-session"), LINE, key="k-1")
    assert a.json["order_id"] != b.json["order_id"]
    assert again.json["order_id"] == a.json["order_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    # nor do they meet the storefront's keys
    store = app.order(STORE, {**LINE, "customer_id": "cust-a"}, key="k-1")
    assert store.json["order_id"] not in (a.json["order_id"], b.json["order_id"])


def test_the_rate_limit_is_per_customer(make_app: Callable[..., App]) -> None:
    app = make_app(customer_rate_limit_per_second=3)
    statuses = [app.order(app.token("cust-a"), LINE).status_code for _ in range(10)]
    assert 429 in statuses, statuses
    assert statuses.count(202) <= 6  # at most two windows' worth
    assert app.order(app.token("cust-b"), LINE).status_code == 202
    assert app.order(STORE, {**LINE, "customer_id": "cust-a"}).status_code == 202


@pytest.mark.parametrize("header", ["Bearer a.b.c", "Bearer eyJ.eyJ.sig"])
def test_an_invalid_token_is_401_invalid_token(app: App, header: str) -> None:
    r = app.order({"Authorization": header}, LINE)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert app.publisher.sent == [] and written(app) == []


def test_a_token_of_a_revoked_session_is_401(app: App) -> None:
    app.redis.set("os:revoked-session:s-gone", 1)
    r = app.client.simulate_get("/v1/auth/me", headers=app.token("cust-a", "s-gone"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_without_signing_keys_no_token_is_valid_and_sign_in_is_503(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    bare = create_app(app.settings, FakePublisher(), fakeredis.FakeAsyncRedis())
    client = testing.TestClient(bare)
    assert client.simulate_get("/v1/auth/me", headers=app.token("c")).status_code == 401
    body = {"email": "a@example.com", "password": PASSWORD}
    assert client.simulate_post("/v1/auth/login", json=body).status_code == 503
    assert client.simulate_get("/.well-known/jwks.json").json == {"keys": []}


# -- sign-in -------------------------------------------------------------------------------


def register(app: App, email: str = "ann@example.com", password: str = PASSWORD) -> Any:
    return app.post("/v1/auth/register", {"email": email, "password": password, "name": "Ann"})


def login(app: App, email: str = "ann@example.com", password: str = PASSWORD) -> Any:
    return app.post("/v1/auth/login", {"email": email, "password": password})


def test_register_then_login_then_me(app: App) -> None:
    created = register(app)
    assert created.status_code == 201
    assert set(created.json) == {"customer_id", "email", "name", "created_at"}
    tokens = login(app, "ANN@example.com")
    assert tokens.status_code == 200
    assert tokens.headers["Cache-Control"] == "no-store"
    assert set(tokens.json) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens.json["token_type"] == "Bearer"
    assert tokens.json["expires_in"] == app.settings.access_token_ttl_s
    auth = {"Authorization": f"Bearer {tokens.json['access_token']}"}
    assert app.client.simulate_get("/v1/auth/me", headers=auth).json == created.json
    assert app.client.simulate_get("/v1/auth/me", headers=STORE).status_code == 403


def test_an_access_token_verifies_against_the_published_jwks_alone(app: App) -> None:
    register(app)
    token = login(app).json["access_token"]
    published = app.client.simulate_get("/.well-known/jwks.json").json
    assert published["keys"] and all("d" not in k for k in published["keys"])
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [k for k in published["keys"] if k["kid"] == kid]
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["ES256"],
        audience=app.settings.jwt_audience, issuer=app.settings.jwt_issuer,
    )  # fmt: skip
    assert (
        claims["sub"]
        == app.client.simulate_get(
            "/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        ).json["customer_id"]
    )


def test_a_duplicate_email_in_any_case_is_409_and_keeps_one_customer(app: App) -> None:
    register(app)
    again = register(app, "Ann@Example.COM")
    assert again.status_code == 409
    assert len(app.accounts.customers) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "ann@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "ann@example.com", "password": "x" * 129, "name": "A"}, "password"),
        ({"email": "ann@example.com", "password": "ann@example.com", "name": "A"}, "password"),
        ({"email": "nope", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "ann@example.com", "password": PASSWORD, "name": "x" * 101}, "name"),
        ({"email": "ann@example.com", "password": PASSWORD}, "name"),  # a missing field is named
    ],
)
def test_a_bad_registration_is_422_named_and_writes_nothing(
    app: App, body: dict[str, Any], field: str
) -> None:
    r = app.post("/v1/auth/register", body)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json["errors"]]
    assert app.accounts.customers == {}


def test_wrong_password_and_unknown_email_are_the_same_401(app: App) -> None:
    register(app)
    wrong = login(app, password=PASSWORD + "!")
    unknown = login(app, "bob@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert app.accounts.sessions == {}


def test_an_email_no_account_can_have_is_a_401_without_asking_the_store(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL refuses a NUL in a query: such an email must not reach it (a 500)."""
    register(app)

    def asked(email: str) -> None:
        raise AssertionError(f"the store was asked for {email!r}")

    monkeypatch.setattr(app.accounts, "credentials", asked)
    for email in ("ann\x00@example.com", "not an email"):
        r = login(app, email)
        assert r.status_code == 401, r.json
        assert r.json["type"].endswith("invalid-credentials")


def test_refresh_rotates_and_a_reused_token_ends_the_session(app: App) -> None:
    register(app)
    first = login(app).json
    second = app.post("/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    reused = app.post("/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert (
        app.post("/v1/auth/refresh", {"refresh_token": second.json["refresh_token"]}).status_code
        == 401
    )
    auth = {"Authorization": f"Bearer {second.json['access_token']}"}
    assert app.client.simulate_get("/v1/auth/me", headers=auth).status_code == 401
    assert len(app.accounts.tokens) == 2  # the reuse made none


def test_logout_ends_refreshes_and_access_tokens(app: App) -> None:
    register(app)
    tokens = login(app).json
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (
        app.post("/v1/auth/logout", {"refresh_token": tokens["refresh_token"]}).status_code == 204
    )
    assert (
        app.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}).status_code == 401
    )
    assert app.client.simulate_get("/v1/auth/me", headers=auth).status_code == 401
    ttl = app.redis.ttl(f"os:revoked-session:{next(iter(app.accounts.sessions))}")
    assert (
        app.settings.access_token_ttl_s
        < ttl
        <= app.settings.access_token_ttl_s + app.settings.jwt_leeway_s
    )
    # an unknown token, or logging out twice, is 204 too
    assert app.post("/v1/auth/logout", {"refresh_token": "unknown"}).status_code == 204


def test_logout_with_only_an_access_token_ends_its_session(app: App) -> None:
    register(app)
    tokens = login(app).json
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert app.post("/v1/auth/logout", {"refresh_token": "lost"}, headers=auth).status_code == 204
    assert app.client.simulate_get("/v1/auth/me", headers=auth).status_code == 401
    assert (
        app.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}).status_code == 401
    )


def test_a_hash_of_older_parameters_is_renewed_at_login(app: App) -> None:
    import asyncio

    old = PasswordHasher(time_cost=1, memory_kib=512, parallelism=1)
    stored = asyncio.run(old.hash(PASSWORD))
    customer = Customer("c-old", "old@example.com", "Old", datetime.now().astimezone())
    app.accounts.add_customer(customer, stored)
    assert login(app, "old@example.com").status_code == 200
    renewed = app.accounts.customers["c-old"][1]
    assert renewed != stored and "m=1024" in renewed
    assert login(app, "old@example.com").status_code == 200


def test_sign_in_is_rate_limited_per_email(make_app: Callable[..., App]) -> None:
    app = make_app(auth_rate_limit_per_email_per_minute=3)
    register(app)
    statuses = [login(app, password="wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 429, 429], statuses  # the registration was the first
    assert login(app, "other@example.com").status_code == 401  # another email is not limited


def test_sign_in_is_rate_limited_per_address(make_app: Callable[..., App]) -> None:
    app = make_app(auth_rate_limit_per_ip_per_minute=2)
    statuses = [login(app, f"u{n}@example.com").status_code for n in range(4)]
    assert statuses == [401, 401, 429, 429], statuses


# -- order history -------------------------------------------------------------------------


def test_history_lists_orders_in_flight_newest_first_a_page_at_a_time(app: App) -> None:
    auth = app.token("cust-a")
    placed = [app.order(auth, LINE).json["order_id"] for _ in range(5)]
    app.order(app.token("cust-b"), LINE)
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        r = app.client.simulate_get("/v1/customers/me/orders", params=params, headers=auth)
        assert r.status_code == 200, r.text
        seen += [item["order_id"] for item in r.json["items"]]
        assert all(item["status"] == "accepted" and item["created_at"] for item in r.json["items"])
        pages += 1
        after = r.json["next"]
        if after is None:
            break
    assert seen == placed[::-1] and pages == 3
    by_key = app.client.simulate_get("/v1/customers/cust-a/orders", headers=STORE)
    assert [item["order_id"] for item in by_key.json["items"]] == placed[::-1]


def test_history_merges_settled_orders_from_postgresql(make_app: Callable[..., App]) -> None:
    settled = [
        {
            "order_id": f"{n:032x}",
            "customer_id": "cust-a",
            "status": "shipped",
            "items": [],
            "created_at": datetime(2026, 1, 1 + n).astimezone(),
        }
        for n in range(3)
    ]
    store = SettledOrders(settled)
    app = make_app(history=store)
    auth = app.token("cust-a")
    recent = app.order(auth, LINE).json["order_id"]
    r = app.client.simulate_get("/v1/customers/me/orders", params={"limit": "3"}, headers=auth)
    expected = [recent, *(row["order_id"] for row in settled[::-1])]
    assert [item["order_id"] for item in r.json["items"]] == expected[:3]
    assert store.excluded == [[recent]]  # in the Redis index: not asked of PostgreSQL
    rest = app.client.simulate_get(
        "/v1/customers/me/orders", params={"after": r.json["next"]}, headers=auth
    )
    assert [item["order_id"] for item in rest.json["items"]] == expected[3:]
    assert rest.json["next"] is None


@dataclass
class SettledOrders:
    rows: list[dict[str, Any]]
    excluded: list[list[str]] = field(default_factory=list)

    def customer_orders(
        self, customer_id: str, before: Position | None, exclude: list[str], limit: int
    ) -> list[dict[str, Any]]:
        self.excluded.append(exclude)
        rows = sorted(self.rows, key=lambda r: (r["created_at"], r["order_id"]), reverse=True)
        rows = [r for r in rows if r["order_id"] not in exclude]
        if before is not None:
            rows = [
                r
                for r in rows
                if (r["created_at"], r["order_id"]) < (before.created_at, before.order_id)
            ]
        return rows[:limit]

    def orders_by_id(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {r["order_id"]: r for r in self.rows if r["order_id"] in order_ids}


def test_a_customer_reads_only_their_own_history(app: App) -> None:
    app.order(app.token("cust-a"), LINE)
    own = app.client.simulate_get("/v1/customers/cust-a/orders", headers=app.token("cust-a"))
    assert own.status_code == 200 and len(own.json["items"]) == 1
    other = app.client.simulate_get("/v1/customers/cust-a/orders", headers=app.token("cust-b"))
    assert other.status_code == 404
    assert app.client.simulate_get("/v1/customers/me/orders", headers=STORE).status_code == 403
    assert app.client.simulate_get("/v1/customers/me/orders", headers=ADMIN_AUTH).status_code == 403


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "101"}, {"after": "%%%"}, {"after": "bm9wZQ"}]
)
def test_bad_history_parameters_are_422(app: App, params: dict[str, str]) -> None:
    r = app.client.simulate_get("/v1/customers/me/orders", params=params, headers=app.token("c"))
    assert r.status_code == 422


def test_the_recent_orders_index_is_bounded(make_app: Callable[..., App]) -> None:
    from orderstream.core.readmodel import CUSTOMER_RECENT_ORDERS

    app = make_app(customer_rate_limit_per_second=0)
    auth = app.token("cust-a")
    for _ in range(CUSTOMER_RECENT_ORDERS + 5):
        app.order(auth, LINE)
    assert app.redis.zcard("os:customer-orders:cust-a") == CUSTOMER_RECENT_ORDERS
    assert app.redis.ttl("os:customer-orders:cust-a") > 0
