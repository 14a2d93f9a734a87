"""Bearer-key authentication and per-key rate limiting (Falcon middleware).

A resource declares who may call each method in ``auth`` (``{"GET": PUBLIC, ...}``);
the default is STOREFRONT. The admin key is accepted wherever the storefront key is.
Keys are compared with ``hmac.compare_digest`` and never logged: logs and Redis keys
carry ``key_id`` (a hash prefix) instead.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import falcon

from ingress.config import key_id
from ingress.errors import Forbidden, RateLimited, Unauthorized
from ingress.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

PUBLIC, STOREFRONT, ADMIN = "public", "storefront", "admin"


class AuthMiddleware:
    def __init__(self, *, storefront_key: str, admin_key: str, limiter: RateLimiter) -> None:
        self._keys = [
            (k.encode(), role)
            for k, role in ((admin_key, ADMIN), (storefront_key, STOREFRONT))
            if k
        ]
        self._ids = {ADMIN: key_id(admin_key), STOREFRONT: key_id(storefront_key)}
        self._limiter = limiter

    async def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None:
            return
        needed = getattr(resource, "auth", {}).get(req.method, STOREFRONT)
        if needed == PUBLIC:
            return
        role = self._role(req.get_header("Authorization"))
        if role is None:
            raise Unauthorized()
        if needed == ADMIN and role != ADMIN:
            raise Forbidden("this endpoint needs the admin key")
        req.context.role = role
        req.context.key_id = self._ids[role]
        try:
            retry_after = await self._limiter.allow(req.context.key_id)
        except Exception as exc:  # fail open: the rate limit protects, it must not take us down
            logger.warning("rate limiter unavailable: %s", exc)
            retry_after = 0
        if retry_after:
            raise RateLimited(retry_after)

    def _role(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = token.strip().encode()
        role = None
        for key, candidate in self._keys:  # compare against every key: no early exit timing
            if hmac.compare_digest(presented, key) and role is None:
                role = candidate
        return role
