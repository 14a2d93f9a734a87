"""A storefront as real ones behave: one Idempotency-Key per order, retried until answered.

``RetryingStorefront.place`` POSTs one order and keeps retrying the SAME request (same key,
same body bytes) on 503, 429, other 5xx, a dropped or refused connection, a timeout, and a
409 saying the key is still in flight, with exponential backoff plus jitter and never
sooner than ``Retry-After``. It stops on 202/201 (accepted), on a 409 refusal by the
sold-out gate (``schemas.orders.refusal_reason``), on any other 4xx (unexpected: recorded),
or when ``give_up_s`` has passed. Every answer is recorded in the order's ``KeyLog``, so
that the checks can tell what each client was told.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from schemas.orders import refusal_reason

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
IN_FLIGHT_SLUG = "idempotency-key-in-flight"

ACCEPTED = "accepted"
REFUSED = "refused"
UNEXPECTED = "unexpected"
GAVE_UP = "gave_up"


@dataclass(frozen=True)
class Answer:
    """One attempt's outcome: ``status`` 0 for no HTTP answer (``kind`` says which failure).

    ``sent`` and ``at`` are ``time.monotonic()`` values; ``order_id`` is the id the answer
    named (202/201 bodies, and 503 problem bodies that carry one)."""

    sent: float
    at: float
    status: int
    kind: str
    order_id: str | None = None
    detail: str = ""


@dataclass
class KeyLog:
    """Everything one order's client sent and was told."""

    key: str
    customer_id: str
    items: list[tuple[str, int]]
    answers: list[Answer] = field(default_factory=list)
    outcome: str = ""  # ACCEPTED, REFUSED, UNEXPECTED or GAVE_UP once the client stopped

    @property
    def accepted_ids(self) -> set[str]:
        """Order ids the client was told were accepted (202/201)."""
        return {a.order_id for a in self.answers if a.status in (201, 202) and a.order_id}

    @property
    def named_ids(self) -> set[str]:
        """Every order id any answer for this key named (accepted or 'outcome unknown')."""
        return {a.order_id for a in self.answers if a.order_id}

    @property
    def refusal(self) -> str | None:
        return next((a.detail for a in self.answers if a.kind == REFUSED), None)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff: attempt n waits ``min(cap, base * 2**n)`` scaled by a random factor in
    [0.5, 1] (jitter, so that clients retrying together spread out), at least the
    answer's ``Retry-After``; each attempt is bounded by ``attempt_timeout_s``."""

    base_s: float = 0.2
    cap_s: float = 5.0
    attempt_timeout_s: float = 15.0
    give_up_s: float = 120.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        backoff = min(self.cap_s, self.base_s * 2**attempt) * random.uniform(0.5, 1.0)
        return max(backoff, retry_after_s or 0.0)


def retry_after(headers: Any) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form the ingress sends), else None."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RetryingStorefront:
    """Places orders through one aiohttp session to 127.0.0.1. At most ``connections``
    requests are on the wire at once, like a storefront server's own pool; an attempt's
    timeout and its ``sent`` time start when it got a connection slot, not while it
    queued for one (which is bounded by the give-up time)."""

    def __init__(
        self,
        base_url: str,
        storefront_key: str,
        policy: RetryPolicy | None = None,
        *,
        connections: int = 1024,
    ) -> None:
        if not base_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"traffic goes to 127.0.0.1 only, not {base_url}")
        self._base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {storefront_key}"}
        self.policy = policy or RetryPolicy()
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(connections)
        # when the latest request that was then accepted had been sent (time.monotonic())
        self.last_accepted_sent = 0.0

    async def __aenter__(self) -> RetryingStorefront:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.policy.attempt_timeout_s),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use RetryingStorefront as an async context manager"
        return self._session

    @staticmethod
    def new_log(customer_id: str, items: Iterable[tuple[str, int]]) -> KeyLog:
        return KeyLog(uuid.uuid4().hex, customer_id, list(items))

    async def place(self, log: KeyLog) -> KeyLog:
        """POST ``log``'s order until a final answer or ``give_up_s``; fills ``log``."""
        body = json.dumps(
            {
                "customer_id": log.customer_id,
                "items": [{"product_id": p, "quantity": q} for p, q in log.items],
            }
        ).encode()
        headers = {
            **self._auth,
            "Content-Type": "application/json",
            "Idempotency-Key": log.key,
        }
        deadline = time.monotonic() + self.policy.give_up_s
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._slots.acquire()
            except TimeoutError:
                log.outcome = GAVE_UP
                return log
            try:
                answer, wait_hint = await self._attempt(body, headers)
            finally:
                self._slots.release()
            log.answers.append(answer)
            if answer.kind == ACCEPTED:
                self.last_accepted_sent = max(self.last_accepted_sent, answer.sent)
            if answer.kind in (ACCEPTED, REFUSED, UNEXPECTED):
                log.outcome = answer.kind
                return log
            delay = self.policy.delay(attempt, wait_hint)
            if time.monotonic() + delay > deadline:
                log.outcome = GAVE_UP
                return log
            attempt += 1
            await asyncio.sleep(delay)

    async def order_status(self, order_id: str, wait_s: float) -> str | None:
        """``GET /v1/orders/{id}?wait=S``: the status, or None (unknown yet, or no answer)."""
        url = f"{self._base_url}/v1/orders/{order_id}"
        try:
            async with self.session.get(
                url, params={"wait": f"{wait_s:g}"}, headers=self._auth
            ) as response:
                if response.status != 200:
                    return None
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return None
        status = body.get("status") if isinstance(body, dict) else None
        return status if isinstance(status, str) else None

    async def _attempt(self, body: bytes, headers: dict[str, str]) -> tuple[Answer, float | None]:
        sent = time.monotonic()
        try:
            async with self.session.post(
                f"{self._base_url}/v1/orders", data=body, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
                hint = retry_after(response.headers)
        except TimeoutError:
            return Answer(sent, time.monotonic(), 0, "timeout"), None
        except (aiohttp.ClientError, OSError) as exc:
            return Answer(sent, time.monotonic(), 0, "connection", detail=type(exc).__name__), None
        return classify(sent, time.monotonic(), status, raw), hint


def classify(sent: float, at: float, status: int, raw: bytes) -> Answer:
    """What an HTTP answer to ``POST /v1/orders`` means to a storefront."""
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else {}
    order_id = body.get("order_id") if isinstance(body.get("order_id"), str) else None
    if status in (201, 202):
        if order_id is None:
            return Answer(sent, at, status, UNEXPECTED, detail="accepted without order_id")
        return Answer(sent, at, status, ACCEPTED, order_id)
    reason = refusal_reason(status, body)
    if reason is not None:
        return Answer(sent, at, status, REFUSED, detail=reason)
    problem_type = str(body.get("type", ""))
    if status == 409 and problem_type.endswith(IN_FLIGHT_SLUG):
        return Answer(sent, at, status, "in_flight", order_id, problem_type)
    if status in RETRIED_STATUSES:
        return Answer(sent, at, status, f"http_{status}", order_id, str(body.get("detail", "")))
    return Answer(sent, at, status, UNEXPECTED, order_id, raw[:300].decode(errors="replace"))
