"""The read side: orders and products from the Redis read model, PostgreSQL as fallback,
and long-polling on status changes through one shared pub/sub subscriber per process.

The fallback is synchronous (SQLAlchemy; it is read only for orders no longer in Redis) and
runs in a thread (``asyncio.to_thread``), off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from ingress.respwire import RespSubscriber
from orderstream.core.readmodel import Keys, decode_order, decode_product

logger = logging.getLogger(__name__)


class Fallback(Protocol):
    def order(self, order_id: str) -> dict[str, Any] | None: ...

    def products(
        self, product_id: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]] | None: ...


class NoFallback:
    def order(self, order_id: str) -> dict[str, Any] | None:
        return None

    def products(
        self, product_id: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]] | None:
        return None


def order_view(order_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The public shape ``{order_id, status, reason?, items, total?}``."""
    view: dict[str, Any] = {"order_id": order_id, "status": data["status"]}
    if data.get("reason"):
        view["reason"] = data["reason"]
    view["items"] = [
        {
            "product_id": item["product_id"],
            "quantity": int(item["quantity"]),
            "unit_price": None if item.get("unit_price") is None else str(item["unit_price"]),
        }
        for item in data.get("items") or []
    ]
    if data.get("total") not in (None, ""):
        view["total"] = str(data["total"])
    return view


class OrderReader:
    def __init__(self, redis: Any, keys: Keys, fallback: Fallback) -> None:
        self._redis = redis
        self._keys = keys
        self._fallback = fallback

    async def get(self, order_id: str) -> dict[str, Any] | None:
        found = await self.find(order_id)
        return None if found is None else found[0]

    async def find(self, order_id: str) -> tuple[dict[str, Any], str | None] | None:
        """The order as ``get`` shows it and its customer id (who may see it)."""
        data = decode_order(await self._redis.hgetall(self._keys.order(order_id)))
        if data is None or "status" not in data:
            data = await asyncio.to_thread(self._fallback.order, order_id)
        if data is None:
            return None
        return order_view(order_id, data), data.get("customer_id")

    async def status(self, order_id: str) -> str | None:
        found = await self.get(order_id)
        return None if found is None else str(found["status"])


class ProductReader:
    def __init__(self, redis: Any, keys: Keys, fallback: Fallback) -> None:
        self._redis = redis
        self._keys = keys
        self._fallback = fallback

    async def get(self, product_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hgetall(self._keys.product(product_id))
        found = decode_product(product_id, raw)
        if found is not None:
            return found
        rows = await asyncio.to_thread(self._fallback.products, product_id)
        return rows[0] if rows else None

    async def page(
        self, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` products in id order after ``after``; and the id to ask ``after``
        next (None on the last page). Reads one page of ids (ZRANGE BYLEX), not all of them."""
        key = self._keys.product_ids()
        first = "-" if after is None else f"({after}"
        raw_ids = await self._redis.zrange(key, first, "+", bylex=True, offset=0, num=limit + 1)
        ids = [_s(i) for i in raw_ids]
        if not ids and not await self._redis.exists(key):  # Redis lost the read model
            page = partial(self._fallback.products, after=after, limit=limit + 1)
            rows = await asyncio.to_thread(page) or []
            return rows[:limit], rows[limit - 1]["product_id"] if len(rows) > limit else None
        chosen = ids[:limit]
        pipe = self._redis.pipeline(transaction=False)
        for product_id in chosen:
            pipe.hgetall(self._keys.product(product_id))
        raws = await pipe.execute()
        found = (decode_product(pid, raw) for pid, raw in zip(chosen, raws, strict=True))
        return [p for p in found if p is not None], chosen[-1] if len(ids) > limit else None


class StatusWaiter:
    """One pub/sub connection per process; a request waits on an Event, not a connection.

    A waiter registers on its order's channel, waits until the channel's subscription is
    confirmed, then re-reads the status (so a change just before it subscribed is not
    missed), and re-checks every ``recheck_s`` in case a publish was lost (reconnects).
    A publish carries the new status (``SET_STATUS_LUA`` publishes after its HSET), so a
    status the waiter is not waiting for (``committed`` on the way to ``shipped``) costs no
    read: the order is read again only for a status it is done on, or after a re-check.

    Cheap per long-poll: SUBSCRIBE and UNSUBSCRIBE are written by one sender task, which
    puts every channel asked for meanwhile into one command; and a channel stays subscribed
    for ``linger_s`` after its last waiter left, so a client that asks again after a change
    (accepted -> committed -> shipped) finds it confirmed: no subscribe, no confirmation wait.
    """

    def __init__(
        self, redis: Any, keys: Keys, recheck_s: float = 5.0, *, linger_s: float = 5.0
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._recheck_s = recheck_s
        self._linger_s = linger_s
        self._waiters: dict[str, set[_Waiter]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}  # subscribed or being subscribed
        self._idle_since: dict[str, float] = {}  # subscribed, nobody waiting
        self._to_subscribe: list[str] = []
        self._wake_sender: asyncio.Event | None = None
        self._subscriber: RespSubscriber | _PubSubReader | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def wait_for_change(
        self, reader: OrderReader, order_id: str, seen: str, timeout_s: float
    ) -> dict[str, Any] | None:
        """The order once its status is not ``seen``, or as it is after ``timeout_s``."""
        return await self.wait_until(reader, order_id, lambda status: status != seen, timeout_s)

    async def wait_until(
        self,
        reader: OrderReader,
        order_id: str,
        done: Callable[[str], bool],
        timeout_s: float,
    ) -> dict[str, Any] | None:
        """The order once ``done(its status)``, or as it is after ``timeout_s`` (None:
        unknown)."""
        deadline = time.monotonic() + timeout_s
        channel = self._keys.order_channel(order_id)
        waiter = _Waiter()
        confirmed = self._register(channel, waiter)
        try:
            await _wait(confirmed, min(1.0, timeout_s))
            current = await reader.get(order_id)
            behind = False  # a status was published since ``current`` was read
            while current is not None and not done(current["status"]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if behind:
                        current = await reader.get(order_id)
                    break
                await _wait(waiter.event, min(remaining, self._recheck_s))
                waiter.event.clear()
                published, waiter.published = waiter.published, None
                behind = published is not None and not done(published)
                if not behind:  # done, or a re-check: read it
                    current = await reader.get(order_id)
            return current
        finally:
            self._unregister(channel, waiter)

    def _register(self, channel: str, waiter: _Waiter) -> asyncio.Event:
        self._ensure_started()
        self._waiters.setdefault(channel, set()).add(waiter)
        self._idle_since.pop(channel, None)
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = asyncio.Event()
            self._to_subscribe.append(channel)
            assert self._wake_sender is not None
            self._wake_sender.set()
        return confirmed

    def _unregister(self, channel: str, waiter: _Waiter) -> None:
        waiters = self._waiters.get(channel)
        if waiters is None:
            return
        waiters.discard(waiter)
        if not waiters:
            del self._waiters[channel]
            # appended, so _idle_since is in time order: _send reads only its stale head
            # (a scan of every idle channel per wake-up showed in a busy ingress's profile)
            self._idle_since[channel] = time.monotonic()

    def _ensure_started(self) -> None:
        if not self._tasks:
            on_message, on_subscribed = self._on_message, self._on_subscribed
            # a BatchedRedis with a hiredis wire (what the ingress runs): subscribe over
            # hiredis too (ingress.respwire); any other client: redis-py's PubSub
            wire = getattr(self._redis, "wire", None)
            if wire is not None:
                self._subscriber = RespSubscriber(
                    wire.endpoint,
                    on_message=on_message,
                    on_subscribed=on_subscribed,
                    name=f"orderstream-ingress-status-{os.getpid()}",
                )
            else:
                self._subscriber = _PubSubReader(
                    self._redis, on_message=on_message, on_subscribed=on_subscribed
                )
            self._wake_sender = asyncio.Event()
            self._tasks = [asyncio.get_running_loop().create_task(self._send())]

    async def _send(self) -> None:
        """The only writer of SUBSCRIBE/UNSUBSCRIBE: batches them, drops idle channels."""
        assert self._wake_sender is not None and self._subscriber is not None
        while True:
            await _wait(self._wake_sender, max(0.2, self._linger_s / 2))
            self._wake_sender.clear()
            now = time.monotonic()
            subscribe, self._to_subscribe = self._to_subscribe, []
            stale = []
            for channel, since in self._idle_since.items():  # oldest first (see _unregister)
                if now - since < self._linger_s:
                    break
                stale.append(channel)
            for channel in stale:
                del self._idle_since[channel]
                self._confirmed.pop(channel, None)
            try:
                if stale:
                    await self._subscriber.unsubscribe(*stale)
                if subscribe:
                    await self._subscriber.subscribe(*subscribe)
            except Exception as exc:
                # waiters fall back to their periodic re-checks; a reconnect re-subscribes
                logger.warning("status subscriber: (un)subscribe failed: %s", exc)

    def _on_subscribed(self, channel: bytes | str) -> None:
        confirmed = self._confirmed.get(_s(channel))
        if confirmed is not None:
            confirmed.set()

    def _on_message(self, channel: bytes | str, data: bytes | str) -> None:
        status = _s(data)
        for waiter in self._waiters.get(_s(channel), ()):
            waiter.published = status
            waiter.event.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._subscriber is not None:
            await self._subscriber.aclose()


class _PubSubReader:
    """Subscriptions through redis-py's ``PubSub`` (clients without a hiredis wire: other
    URL schemes, the unit tests' fakeredis), read by one task."""

    def __init__(
        self,
        redis: Any,
        *,
        on_message: Callable[[bytes | str, bytes | str], None],
        on_subscribed: Callable[[bytes | str], None],
    ) -> None:
        self.pubsub = redis.pubsub()
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._connected = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def subscribe(self, *channels: str) -> None:
        await self.pubsub.subscribe(*channels)
        self._connected.set()

    async def unsubscribe(self, *channels: str) -> None:
        await self.pubsub.unsubscribe(*channels)

    async def _run(self) -> None:
        while True:
            if self.pubsub.connection is None:  # made by the first SUBSCRIBE
                await self._connected.wait()
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except Exception as exc:
                logger.warning("status subscriber: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                self._on_subscribed(message["channel"])
            elif message["type"] == "message":
                self._on_message(message["channel"], message["data"])

    async def aclose(self) -> None:
        self._reader.cancel()
        await self.pubsub.aclose()


class _Waiter:
    """One request waiting on an order's channel: woken by ``event``; ``published`` is the
    last status published since it last looked (statuses only move forward)."""

    __slots__ = ("event", "published")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.published: str | None = None


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
