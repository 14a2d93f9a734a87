"""Bearer authentication and rate limiting (Falcon middleware).

A resource declares who may call each method in ``auth`` (``{"GET": PUBLIC, ...}``);
the default is STOREFRONT (the storefront or the admin key). BUYER also takes a customer's
access token, CUSTOMER only that. The admin key is accepted wherever the storefront key is.
Keys are compared with ``hmac.compare_digest`` and never logged: logs and Redis keys
carry ``key_id`` (a hash prefix) instead. A bearer that is no key is verified as a
customer's access token (``ingress.identity.CustomerTokens``).

``req.context`` gets ``role`` (admin, storefront, customer), ``key_id`` (whose
Idempotency-Keys and rate limit: a key's hash prefix, or ``customer:<id>``) and
``customer_id`` (the token's ``sub``; None for a key). A key is rate limited per key, a
customer per customer.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import falcon

from ingress.config import key_id
from ingress.errors import Forbidden, InvalidToken, RateLimited, Unauthorized
from ingress.identity import CustomerTokens
from ingress.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

PUBLIC, CUSTOMER, BUYER, STOREFRONT, ADMIN = "public", "customer", "buyer", "storefront", "admin"
_ALLOWED = {
    CUSTOMER: {CUSTOMER},
    BUYER: {CUSTOMER, STOREFRONT, ADMIN},
    STOREFRONT: {STOREFRONT, ADMIN},
    ADMIN: {ADMIN},
}


class AuthMiddleware:
    def __init__(
        self,
        *,
        storefront_key: str,
        admin_key: str,
        limiter: RateLimiter,
        customers: CustomerTokens | None = None,
        customer_limiter: RateLimiter | None = None,
    ) -> None:
        self._keys = [
            (k.encode(), role)
            for k, role in ((admin_key, ADMIN), (storefront_key, STOREFRONT))
            if k
        ]
        self._ids = {ADMIN: key_id(admin_key), STOREFRONT: key_id(storefront_key)}
        self._limiter = limiter
        self._customers = customers
        self._customer_limiter = customer_limiter or limiter

    async def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.customer_id = None
        if resource is None:
            return
        needed = getattr(resource, "auth", {}).get(req.method, STOREFRONT)
        if needed == PUBLIC:
            return
        token = bearer(req.get_header("Authorization"))
        if token is None:
            raise Unauthorized()
        role = self._role(token)
        if role is None:
            await self._customer(req, token)
            role = CUSTOMER
        else:
            req.context.key_id = self._ids[role]
        if role not in _ALLOWED[needed]:
            raise Forbidden(_FORBIDDEN[needed])
        req.context.role = role
        limiter = self._customer_limiter if role == CUSTOMER else self._limiter
        try:
            retry_after = await limiter.allow(req.context.key_id)
        except Exception as exc:  # fail open: the rate limit protects, it must not take us down
            logger.warning("rate limiter unavailable: %s", exc)
            retry_after = 0
        if retry_after:
            raise RateLimited(retry_after)

    async def _customer(self, req: falcon.Request, token: str) -> None:
        if token.count(".") != 2:  # no JWT: a wrong key
            raise Unauthorized()
        if self._customers is None:  # customer sign-in is not configured
            raise InvalidToken()
        claims = await self._customers.verify(token)
        req.context.customer_id = claims.customer_id
        req.context.session_id = claims.session_id
        req.context.key_id = f"customer:{claims.customer_id}"

    def _role(self, token: str) -> str | None:
        presented = token.encode()
        role = None
        for key, candidate in self._keys:  # compare against every key: no early exit timing
            if hmac.compare_digest(presented, key) and role is None:
                role = candidate
        return role


_FORBIDDEN = {
    CUSTOMER: "this endpoint needs a customer's access token",
    BUYER: "this endpoint needs the storefront key or a customer's access token",
    STOREFRONT: "this endpoint needs the storefront key",
    ADMIN: "this endpoint needs the admin key",
}


def bearer(header: str | None) -> str | None:
    """The credential of ``Authorization: Bearer <credential>`` (None without one)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
