"""HTTP resources of customers: sign-in (``/v1/auth/...``), the public keys, order history.

Sign-in endpoints are public (they take credentials in the body) and rate limited per
client address and, where there is one, per email (``SignInLimits``), before any password
is hashed. Token answers carry ``Cache-Control: no-store`` (RFC 6749 §5.1).
"""

from __future__ import annotations

import logging
import re

import falcon
import falcon.asgi

from ingress.auth import BUYER, CUSTOMER, PUBLIC, bearer
from ingress.config import key_id
from ingress.credentials import LoginRequest, RefreshRequest, RegisterRequest, normalized_email
from ingress.errors import FieldError, Forbidden, InvalidToken, NotFound, RateLimited, Unavailable
from ingress.errors import ValidationFailed as Invalid
from ingress.history import OrderHistory, Position
from ingress.http import query_int, read_json, send_json
from ingress.identity import CustomerTokens, Identity
from ingress.ratelimit import RateLimiter
from ingress.tokens import AccessClaims
from ingress.validation import decode
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"  # schemas.common.CustomerId
DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE = 20, 100


class SignInLimits:
    """Sign-in attempts per client address and per email, per minute, across workers."""

    def __init__(self, per_address: RateLimiter, per_email: RateLimiter) -> None:
        self._per_address = per_address
        self._per_email = per_email

    async def check(self, req: falcon.asgi.Request, email: str | None = None) -> None:
        checks = [(self._per_address, f"ip:{req.remote_addr}", "from this address")]
        if email is not None:
            checks.append((self._per_email, key_id(normalized_email(email)), "for this email"))
        for limiter, name, whose in checks:
            try:
                retry_after = await limiter.allow(name)
            except Exception as exc:  # fail open, as the per-key limit does
                logger.warning("sign-in rate limiter unavailable: %s", exc)
                retry_after = 0
            if retry_after:
                raise RateLimited(retry_after, f"too many sign-in attempts {whose}")


class _SignIn:
    auth = {"POST": PUBLIC}

    def __init__(self, settings: Settings, identity: Identity | None, limits: SignInLimits) -> None:
        self._settings = settings
        self._identity = identity
        self._limits = limits

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise Unavailable("customer sign-in is not configured (no JWT signing keys)")
        return self._identity

    async def body(self, req: falcon.asgi.Request) -> bytes:
        return await read_json(req, self._settings.max_body_bytes)


def _no_store(resp: falcon.asgi.Response) -> None:
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Pragma", "no-cache")


class RegisterResource(_SignIn):
    """``POST /v1/auth/register``: 201 with the new customer."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        identity = self.identity
        body = decode(await self.body(req), RegisterRequest)
        await self._limits.check(req, body.email)
        customer = await identity.register(body)
        _no_store(resp)
        send_json(resp, customer.view(), 201)


class LoginResource(_SignIn):
    """``POST /v1/auth/login``: 200 with a token pair, or 401 alike for any wrong input."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        identity = self.identity
        body = decode(await self.body(req), LoginRequest)
        await self._limits.check(req, body.email)
        pair = await identity.login(body)
        _no_store(resp)
        send_json(resp, pair.body())


class RefreshResource(_SignIn):
    """``POST /v1/auth/refresh``: 200 with a new pair; the refresh token is used up."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        identity = self.identity
        await self._limits.check(req)
        body = decode(await self.body(req), RefreshRequest)
        pair = await identity.refresh(body.refresh_token)
        _no_store(resp)
        send_json(resp, pair.body())


class LogoutResource(_SignIn):
    """``POST /v1/auth/logout``: 204; the session ends (refresh token and access tokens)."""

    def __init__(
        self,
        settings: Settings,
        identity: Identity | None,
        limits: SignInLimits,
        tokens: CustomerTokens | None,
    ) -> None:
        super().__init__(settings, identity, limits)
        self._tokens = tokens

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        identity = self.identity
        await self._limits.check(req)
        body = decode(await self.body(req), RefreshRequest)
        await identity.logout(body.refresh_token, await self._access(req))
        resp.status = 204

    async def _access(self, req: falcon.asgi.Request) -> AccessClaims | None:
        """The access token sent along, if valid (an expired one is no reason to refuse a
        logout)."""
        token = bearer(req.get_header("Authorization"))
        if token is None or self._tokens is None:
            return None
        try:
            return await self._tokens.verify(token)
        except InvalidToken:
            return None


class MeResource:
    """``GET /v1/auth/me``: the signed-in customer."""

    auth = {"GET": CUSTOMER}

    def __init__(self, identity: Identity | None) -> None:
        self._identity = identity

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        found = (
            None
            if self._identity is None
            else await self._identity.customer(req.context.customer_id)
        )
        if found is None:
            raise NotFound("no such customer")
        resp.set_header("Cache-Control", "no-store")
        send_json(resp, found.view())


class JwksResource:
    """``GET /.well-known/jwks.json``: the public keys that verify access tokens."""

    auth = {"GET": PUBLIC}

    def __init__(self, tokens: CustomerTokens | None) -> None:
        self._jwks = {"keys": []} if tokens is None else tokens.authority.public_jwks

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.set_header("Cache-Control", "public, max-age=300")
        send_json(resp, self._jwks)


class CustomerOrdersResource:
    """A customer's orders, newest first: ``GET /v1/customers/me/orders`` (a customer's
    token) and ``GET /v1/customers/{customer_id}/orders`` (a key; a customer's token for
    its own id only: another id is 404, as for another customer's order)."""

    auth = {"GET": BUYER}

    def __init__(self, history: OrderHistory) -> None:
        self._history = history

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        own = req.context.customer_id
        if own is None:
            raise Forbidden("`me` needs a customer's access token; a key names the customer")
        await self._page(req, resp, own)

    async def on_get_customer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, customer_id: str
    ) -> None:
        if not _valid_customer_id(customer_id):
            raise Invalid([FieldError("path:customer_id", f"must match {CUSTOMER_ID_PATTERN}")])
        own = req.context.customer_id
        if own is not None and own != customer_id:
            raise NotFound("no such customer")
        await self._page(req, resp, customer_id)

    async def _page(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, customer_id: str
    ) -> None:
        limit = query_int(req, "limit", 1, MAX_HISTORY_PAGE, DEFAULT_HISTORY_PAGE)
        after = req.get_param("after")
        position = None if after is None else Position.from_cursor(after)
        items, next_cursor = await self._history.page(customer_id, limit, position)
        send_json(resp, {"items": items, "next": next_cursor})


def _valid_customer_id(customer_id: str) -> bool:
    return re.fullmatch(CUSTOMER_ID_PATTERN, customer_id) is not None
