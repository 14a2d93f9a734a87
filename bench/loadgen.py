"""The load generator: one process, asyncio on uvloop (when present), a lean HTTP/1.1 client.

An order is ``POST /v1/orders`` and then, while its status is not terminal, long-polls
``GET /v1/orders/{id}?wait=S``, all on one keep-alive connection (``bench.httpclient``: the
requests are bytes formatted here, the responses parsed by httptools). Two modes:

- **closed loop** (the default): ``concurrency`` buyers, each with its own connection, place an
  order, wait for its final answer, then place the next one, until the scenario's orders are
  placed or ``duration_s`` has passed. The offered load is whatever the system lets through.
- **open loop** (``rate``): orders are due on a fixed schedule, ``rate`` per second, evenly
  spaced (``arrivals="even"``) or as a Poisson process (``"poisson"``, exponential gaps from a
  fixed seed), for ``duration_s`` or until the scenario's orders are used up, whichever comes
  first. Each order runs as its own task on a connection lent by a pool of at most
  ``concurrency`` connections, so ``concurrency`` caps the orders in flight. An order that finds
  every connection busy waits for one, and its latency still counts from its **scheduled** time
  (``OrderOutcome.t_scheduled``): a stalled system cannot hide its queue behind a client that
  stopped sending (coordinated omission). Orders still waiting when the answer deadline passes
  are recorded as not started (``error="not_started"``, counted as failed).

Answers are awaited until ``duration_s + drain_s``. Its own CPU time is reported so we can
tell whether it was the bottleneck (one core busy = suspect).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bench.figures import (
    ACCEPTED_HTTP,
    FINAL_HTTP,
    NOT_STARTED,
    REFUSED_HTTP,
    TERMINAL,
    OrderOutcome,
)
from bench.httpclient import Connection, Endpoint, HttpClientError, Pool
from bench.scenarios import Lines
from schemas.orders import refusal_reason

logger = logging.getLogger(__name__)

Tick = Callable[[int], Any]

# What a request of the order path may raise (TimeoutError is an OSError; ValueError: bad JSON).
ERRORS = (OSError, HttpClientError, ValueError)
ARRIVALS = ("even", "poisson")
CLOSED_CONCURRENCY = 128  # buyers in closed loop
OPEN_CONCURRENCY = 1024  # connections (= orders in flight) at most in open loop
MIN_SLEEP_S = 0.001  # the open loop's shortest wait for the next order's time
ANSWERING_HTTP = (ACCEPTED_HTTP, FINAL_HTTP, REFUSED_HTTP)  # POST answers the client reads


@dataclass(frozen=True)
class Target:
    """Where a system under test answers, and the keys it takes."""

    name: str
    url: str
    storefront_key: str
    admin_key: str


@dataclass(frozen=True)
class LoadConfig:
    """How the load is offered; ``rate`` (orders/s) switches to open loop."""

    concurrency: int = CLOSED_CONCURRENCY  # buyers (closed loop); connection cap (open loop)
    duration_s: float = 30.0
    drain_s: float = 20.0
    wait_s: float = 10.0
    connect_timeout_s: float = 10.0
    rate: float | None = None  # orders/s offered, open loop; None: closed loop
    arrivals: str = "even"  # open loop: "even" spacing or "poisson"
    # POST with "Prefer: wait=<wait_s>" (RFC 7240): a system that honours it answers 201 with
    # the final order in the POST (orderstream does); others ignore it and are long-polled
    prefer_wait: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {ARRIVALS}")

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    @property
    def request_timeout_s(self) -> float:
        """One request, connecting included (as the aiohttp session's total timeout was)."""
        return self.wait_s + self.connect_timeout_s + 5


def session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    """An aiohttp session for what is off the order path (stocking the catalog)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=3600)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, json_serialize=json.dumps)


def order_body(lines: Lines, customer: int) -> dict[str, Any]:
    return {
        "customer_id": f"bench-c{customer}",
        "items": [{"product_id": pid, "quantity": q} for pid, q in lines],
    }


class OrderRequests:
    """The order path's requests to one target as bytes; the fixed parts formatted once."""

    def __init__(self, target: Target, prefer_wait_s: float | None = None) -> None:
        self.endpoint = Endpoint.from_url(target.url)
        prefix, host = self.endpoint.path_prefix, self.endpoint.host_header
        auth = f"Authorization: Bearer {target.storefront_key}\r\n"
        prefer = "" if prefer_wait_s is None else f"Prefer: wait={prefer_wait_s:g}\r\n"
        self._post = (
            f"POST {prefix}/v1/orders HTTP/1.1\r\nHost: {host}\r\n{auth}{prefer}"
            "Content-Type: application/json\r\nIdempotency-Key: "
        ).encode()
        self._get = f"GET {prefix}/v1/orders/".encode()
        self._get_end = f" HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()

    def post(self, lines: Lines, customer: int) -> bytes:
        body = json.dumps(order_body(lines, customer)).encode()
        key = str(uuid.uuid4()).encode()
        return b"%s%s\r\nContent-Length: %d\r\n\r\n%s" % (self._post, key, len(body), body)

    def get(self, order_id: str, wait: float) -> bytes:
        path = quote(order_id, safe="").encode()
        return b"%s%s?wait=%.1f%s" % (self._get, path, wait, self._get_end)


def json_body(body: bytes) -> Any:
    """The JSON of a response body; None for an empty one (as aiohttp's ``json()``)."""
    return json.loads(body) if body.strip() else None


@dataclass(frozen=True)
class OrderPath:
    """What every order of one run shares: its requests, answer deadline and request timeout."""

    requests: OrderRequests
    answer_by: float  # monotonic seconds: no long-poll after this
    wait_s: float  # the long-poll's ?wait=S at most
    timeout_s: float  # one request, connecting included

    @classmethod
    def of_run(cls, requests: OrderRequests, config: LoadConfig, start: float) -> OrderPath:
        answer_by = start + config.duration_s + config.drain_s
        return cls(requests, answer_by, config.wait_s, config.request_timeout_s)


async def place_one(
    conn: Connection, path: OrderPath, lines: Lines, customer: int, scheduled: float | None = None
) -> OrderOutcome:
    """POST one order on ``conn``, then follow it to its final answer (or ``path.answer_by``)."""
    data = path.requests.post(lines, customer)
    outcome = OrderOutcome(lines=lines, t_sent=time.monotonic(), t_scheduled=scheduled)
    try:
        response = await conn.request(data, path.timeout_s)
        outcome.http_status = response.status
        body = json_body(response.body) if response.status in ANSWERING_HTTP else None
    except ERRORS as exc:
        outcome.error = type(exc).__name__
        return outcome
    if response.status == REFUSED_HTTP:
        reason = refusal_reason(response.status, body)
        if reason is not None:
            # refused at the door (orderstream's sold-out gate): the POST is the final answer
            assert isinstance(body, dict)
            outcome.final_status = "rejected"
            outcome.reason = reason
            outcome.refused_product = body.get("product_id")
            outcome.t_final = time.monotonic()
        return outcome
    if not isinstance(body, dict) or "order_id" not in body:
        return outcome
    outcome.order_id = str(body["order_id"])
    outcome.t_accepted = time.monotonic()
    await follow(conn, path, outcome, body)
    return outcome


async def follow(
    conn: Connection, path: OrderPath, outcome: OrderOutcome, body: dict[str, Any]
) -> None:
    """Long-poll until the order has a terminal status or the answer deadline passes."""
    order_id = str(outcome.order_id)
    while True:
        if body.get("status") in TERMINAL:
            outcome.final_status = str(body["status"])
            outcome.reason = body.get("reason")
            outcome.t_final = time.monotonic()
            return
        remaining = path.answer_by - time.monotonic()
        if remaining <= 0:
            return
        wait = max(0.1, min(path.wait_s, remaining))
        try:
            get = path.requests.get(order_id, wait)
            response = await conn.request(get, path.timeout_s, retry=True)
            if response.status == 200:
                got = json_body(response.body)
                if isinstance(got, dict):
                    body = got
                    continue
        except ERRORS as exc:
            outcome.error = f"get:{type(exc).__name__}"
        await asyncio.sleep(0.05)  # 404 before the read model has it, or an error: retry shortly


def arrival_offsets(rate: float, arrivals: str = "even", seed: int = 0) -> Iterator[float]:
    """Seconds from the start at which the open loop's orders are due, endlessly.

    ``even``: order n at n / rate. ``poisson``: the first at 0, then gaps drawn from an
    exponential distribution of mean 1 / rate (a Poisson process; reproducible by ``seed``).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if arrivals == "even":
        for n in itertools.count():
            yield n / rate
    elif arrivals == "poisson":
        rng = random.Random(seed)
        at = 0.0
        while True:
            yield at
            at += rng.expovariate(rate)
    else:
        raise ValueError(f"arrivals must be one of {ARRIVALS}: {arrivals!r}")


async def run_orders(
    target: Target,
    orders: Iterator[Lines],
    max_orders: int,
    config: LoadConfig,
    tick: Tick = lambda n: None,
) -> list[OrderOutcome]:
    """Place the scenario's orders in the configured mode; what the client saw of each."""
    if config.rate is not None:
        return await run_open_loop(target, orders, max_orders, config, tick)
    return await run_closed_loop(target, orders, max_orders, config, tick)


async def run_closed_loop(
    target: Target,
    orders: Iterator[Lines],
    max_orders: int,
    config: LoadConfig,
    tick: Tick = lambda n: None,
) -> list[OrderOutcome]:
    requests = OrderRequests(target, config.wait_s if config.prefer_wait else None)
    start = time.monotonic()
    load_end = start + config.duration_s
    path = OrderPath.of_run(requests, config, start)
    numbers = itertools.count()
    outcomes: list[OrderOutcome] = []

    async def buyer() -> None:
        conn = Connection(requests.endpoint, config.connect_timeout_s)
        try:
            while time.monotonic() < load_end:
                n = next(numbers)
                if n >= max_orders:
                    return
                outcome = await place_one(conn, path, next(orders), n)
                outcomes.append(outcome)
                tick(1)
        finally:
            conn.close()

    await asyncio.gather(*(buyer() for _ in range(config.concurrency)))
    return outcomes


async def run_open_loop(
    target: Target,
    orders: Iterator[Lines],
    max_orders: int,
    config: LoadConfig,
    tick: Tick = lambda n: None,
) -> list[OrderOutcome]:
    if config.rate is None:
        raise ValueError("open loop needs a rate")
    requests = OrderRequests(target, config.wait_s if config.prefer_wait else None)
    pool = Pool(requests.endpoint, config.concurrency, config.connect_timeout_s)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    path = OrderPath.of_run(requests, config, start)
    outcomes: list[OrderOutcome] = []
    running: set[asyncio.Task[None]] = set()

    async def one(conn: Connection, lines: Lines, n: int, due: float) -> None:
        try:
            outcome = await place_one(conn, path, lines, n, scheduled=due)
        finally:
            pool.release(conn)
        outcomes.append(outcome)
        tick(1)

    try:
        for n, offset in enumerate(arrival_offsets(config.rate, config.arrivals)):
            if n >= max_orders or offset >= config.duration_s:
                break
            due = start + offset
            # uvloop's timers count whole milliseconds from a clock cached per loop iteration,
            # so a sleep may end a little early: sleep again, at least 1 ms (a shorter sleep
            # can end at once, again and again), and never send before the order is due.
            while (delay := due - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(max(delay, MIN_SLEEP_S))
            lines = next(orders)
            conn = await pool.acquire(path.answer_by)
            if conn is not None and time.monotonic() >= path.answer_by:
                pool.release(conn)  # freed too late: the order could not be answered in time
                conn = None
            if conn is None:  # every connection stayed busy until the answer deadline
                outcomes.append(
                    OrderOutcome(lines=lines, t_sent=due, t_scheduled=due, error=NOT_STARTED)
                )
                tick(1)
                continue
            task = loop.create_task(one(conn, lines, n, due))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        pool.close()
    return outcomes


async def hammer(
    url: str, duration_s: float, concurrency: int, tick: Tick = lambda n: None
) -> tuple[int, int, float]:
    """GET ``url`` as fast as possible, one keep-alive connection per client; (ok, failed, s)."""
    endpoint = Endpoint.from_url(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {endpoint.host_header}\r\n\r\n".encode()
    ok = failed = 0
    start = time.monotonic()
    end = start + duration_s

    async def client() -> None:
        nonlocal ok, failed
        conn = Connection(endpoint)
        try:
            while time.monotonic() < end:
                try:
                    response = await conn.request(request, 30.0, retry=True)
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1
                except ERRORS:
                    failed += 1
                if (ok + failed) % 200 == 0:
                    tick(200)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return ok, failed, time.monotonic() - start


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run(coro: Any) -> Any:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
