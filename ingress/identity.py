"""Customer sign-in: register, log in, refresh, log out (docs/identity.md).

A sign-in opens a session: a family of opaque refresh tokens (``secrets.token_urlsafe``,
stored as SHA-256) that rotate on every use, and short-lived access tokens carrying the
session's id (``sid``). A refresh token used twice revokes its session. Logging out
revokes the session in PostgreSQL (no more refreshes) and marks it in Redis for as long as
an access token of it can live (``access_token_ttl_s`` + leeway), so its access tokens stop
working at once: ``CustomerTokens.verify`` looks the mark up on every customer request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingress.accounts import AccountStore, Customer
from ingress.credentials import LoginRequest, RegisterRequest, check_registration, email_problems
from ingress.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    Unavailable,
)
from ingress.passwords import PasswordHasher
from ingress.tokens import AccessClaims, TokenAuthority
from orderstream.core.readmodel import Keys

logger = logging.getLogger(__name__)

# KEYS[1] a session's revocation mark. 1 when set.
_REVOKED_LUA = "return redis.call('EXISTS', KEYS[1])"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str

    def body(self) -> dict[str, Any]:
        """The OAuth 2.0 token response (RFC 6749 §5.1)."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


class CustomerTokens:
    """Verifies a customer's access token: signature and claims, then its session's
    revocation mark in Redis (one script call, batched with the request's others)."""

    def __init__(self, authority: TokenAuthority, redis: Any, keys: Keys, leeway_s: int) -> None:
        self.authority = authority
        self._redis = redis
        self._keys = keys
        self.revocation_ttl_s = authority.ttl_s + leeway_s

    async def verify(self, token: str) -> AccessClaims:
        claims = self.authority.verify(token)
        try:
            revoked = await self._redis.eval(
                _REVOKED_LUA, 1, self._keys.revoked_session(claims.session_id)
            )
        except Exception as exc:  # fail closed: a signed-out session must not come back
            logger.warning("redis unavailable for a session check: %s", exc)
            raise Unavailable("customer sessions cannot be checked (Redis)") from None
        if int(revoked):
            raise InvalidToken("the session has ended; sign in again")
        return claims

    async def revoke(self, session_id: str) -> None:
        await self._redis.set(
            self._keys.revoked_session(session_id), b"1", ex=self.revocation_ttl_s
        )


class Identity:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        hasher: PasswordHasher,
        tokens: CustomerTokens,
        refresh_ttl_s: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._accounts = accounts
        self._hasher = hasher
        self._tokens = tokens
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)
        self._clock = clock

    async def register(self, body: RegisterRequest) -> Customer:
        """A new customer; 422 for a weak or malformed field, 409 for a taken email (the
        customer is written whole or not at all)."""
        check_registration(body)
        customer = Customer(
            customer_id=str(uuid.uuid4()),
            email=body.email.strip(),
            name=body.name.strip(),
            created_at=self._clock(),
        )
        password_hash = await self._hasher.hash(body.password)
        if not await asyncio.to_thread(self._accounts.add_customer, customer, password_hash):
            raise EmailTaken()
        logger.info("customer %s registered", customer.customer_id)
        return customer

    async def login(self, body: LoginRequest) -> TokenPair:
        """Tokens for the right password; 401 ``InvalidCredentials`` otherwise, after the
        same work whether or not the email is known."""
        email = body.email.strip()
        # an email no registration accepts (a NUL, say) holds no account: not looked up
        found = (
            None
            if email_problems(email)
            else await asyncio.to_thread(self._accounts.credentials, email)
        )
        stored = None if found is None else found.password_hash
        if not await self._hasher.verify(stored, body.password) or found is None:
            raise InvalidCredentials()
        customer_id = found.customer.customer_id
        if self._hasher.needs_rehash(found.password_hash):
            new_hash = await self._hasher.hash(body.password)
            await asyncio.to_thread(
                self._accounts.set_password_hash, customer_id, found.password_hash, new_hash
            )
        session_id = secrets.token_urlsafe(16)
        refresh = secrets.token_urlsafe(32)
        expires_at = self._clock() + self._refresh_ttl
        await asyncio.to_thread(
            self._accounts.open_session, customer_id, session_id, token_hash(refresh), expires_at
        )
        return self._pair(customer_id, session_id, refresh)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a valid refresh token, which is used up; 401 for anything else.
        A token used before revokes its session (every token and access token of it)."""
        new = secrets.token_urlsafe(32)
        now = self._clock()
        result = await asyncio.to_thread(
            self._accounts.rotate,
            token_hash(refresh_token),
            token_hash(new),
            now + self._refresh_ttl,
            now,
        )
        if result.outcome == "reused" and result.session_id is not None:
            await self._tokens.revoke(result.session_id)
        if result.outcome != "rotated" or result.customer_id is None or result.session_id is None:
            raise InvalidRefreshToken()
        return self._pair(result.customer_id, result.session_id, new)

    async def logout(self, refresh_token: str, access: AccessClaims | None) -> None:
        """Revoke the refresh token's session, and the access token's when one is sent. An
        unknown token revokes nothing and is no error (RFC 7009 §2.2)."""
        now = self._clock()
        revoked = await asyncio.to_thread(
            self._accounts.revoke, token_hash(refresh_token), "logout", now
        )
        sessions = {revoked} if revoked is not None else set()
        if access is not None and access.session_id not in sessions:
            await asyncio.to_thread(self._accounts.revoke_session, access.session_id, "logout", now)
            sessions.add(access.session_id)
        for session_id in sessions:
            await self._tokens.revoke(session_id)

    async def customer(self, customer_id: str) -> Customer | None:
        return await asyncio.to_thread(self._accounts.customer, customer_id)

    def _pair(self, customer_id: str, session_id: str, refresh: str) -> TokenPair:
        access = self._tokens.authority.issue(customer_id, session_id)
        return TokenPair(access, self._tokens.authority.ttl_s, refresh)
