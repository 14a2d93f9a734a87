"""Idempotency-Key handling (Stripe style, IETF draft ``Idempotency-Key`` header).

A Redis key scoped to the storefront key (a hash of it) holds the request's fingerprint and
its order id, in flight and then done with the response, for ``idempotency_ttl_s``. A retry
with the same body replays a done response; one that finds the claim in flight (the answer
was lost, a 503 ``outcome-unknown``, an ingress died) takes the order over and publishes its
lines again, which the pipeline dedupes per (order id, line). The same key with another body
is a 422. The claim itself is taken by ``ingress.admission.ADMIT_LUA``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from orderstream.core.readmodel import Keys
from schemas.orders import request_key_for


class Stored(msgspec.Struct, frozen=True):
    fingerprint: str
    state: str  # "in_flight" | "done"
    token: str = ""  # the order id
    status: int = 0
    body: bytes = b""
    location: str | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim a key: ``previous`` is None when the claim is ours,
    else what another attempt stored."""

    key: str
    order_id: str
    previous: Stored | None


def fingerprint(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Any, *, keys: Keys, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s

    def key(self, scope: str, idempotency_key: str) -> str:
        return self._keys.idempotency(request_key_for(scope, idempotency_key))

    def claim_value(self, request_fingerprint: str, token: str) -> bytes:
        return msgspec.json.encode(Stored(request_fingerprint, "in_flight", token))

    @property
    def ttl_ms(self) -> int:
        return self._ttl_s * 1000

    @staticmethod
    def outcome(key: str, order_id: str, previous: bytes | None) -> Claim:
        if previous is None:
            return Claim(key, order_id, None)
        return Claim(key, order_id, msgspec.json.decode(previous, type=Stored))

    @staticmethod
    def take_over(claim: Claim) -> Claim:
        """The in-flight claim of an earlier attempt, as ours: its order."""
        assert claim.previous is not None and claim.previous.state == "in_flight"
        return Claim(claim.key, claim.previous.token, None)

    async def complete(
        self, claim: Claim, fingerprint_: str, status: int, body: bytes, location: str | None
    ) -> None:
        done = Stored(
            fingerprint_, "done", claim.order_id, status=status, body=body, location=location
        )
        await self._redis.set(claim.key, msgspec.json.encode(done), ex=self._ttl_s)
