"""Idempotency-Key handling (Stripe style, IETF draft ``Idempotency-Key`` header).

A Redis key scoped to the storefront key (a hash of it) holds the request's fingerprint
and, once done, the response: a retry with the same body replays the response (same
order_id); the same key with another body is a 422; a key still in flight is a 409. The
in-flight claim has a short TTL (a crashed worker's claim lapses) and a failed publish
releases it so the client's retry can succeed. Completed keys live ``idempotency_ttl_s``.
The claim itself is taken by ``ingress.admission.ADMIT_LUA``, in the order's one script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

# KEYS[1] idempotency key; ARGV[1] the claim value. Deletes only our own claim.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Stored(msgspec.Struct, frozen=True):
    fingerprint: str
    state: str  # "in_flight" | "done"
    token: str = ""
    status: int = 0
    body: bytes = b""
    location: str | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim a key: ``previous`` is None when the claim is ours."""

    key: str
    value: bytes
    previous: Stored | None


def fingerprint(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Any, *, namespace: str, ttl_s: int, lock_s: float) -> None:
        self._redis = redis
        self._prefix = f"{namespace}os:idem:"
        self._ttl_s = ttl_s
        self._lock_ms = int(lock_s * 1000)

    def key(self, scope: str, idempotency_key: str) -> str:
        return f"{self._prefix}{scope}:{fingerprint(idempotency_key)[:32]}"

    def claim_value(self, request_fingerprint: str, token: str) -> bytes:
        return msgspec.json.encode(Stored(request_fingerprint, "in_flight", token))

    @property
    def lock_ms(self) -> int:
        return self._lock_ms

    @staticmethod
    def outcome(key: str, value: bytes, previous: bytes | None) -> Claim:
        return Claim(
            key, value, None if previous is None else msgspec.json.decode(previous, type=Stored)
        )

    async def complete(
        self, claim: Claim, fingerprint_: str, status: int, body: bytes, location: str | None
    ) -> None:
        done = Stored(fingerprint_, "done", status=status, body=body, location=location)
        await self._redis.set(claim.key, msgspec.json.encode(done), ex=self._ttl_s)

    async def release(self, claim: Claim) -> None:
        await self._redis.eval(_RELEASE_LUA, 1, claim.key, claim.value)
