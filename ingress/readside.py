"""The read side: orders and products from the Redis read model, PostgreSQL as fallback,
and long-polling on status changes through one shared pub/sub subscriber per process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from orderstream.readmodel import Keys, decode_order, decode_product

logger = logging.getLogger(__name__)


class Fallback(Protocol):
    def order(self, order_id: str) -> dict[str, Any] | None: ...

    def products(self, product_id: str | None = None) -> list[dict[str, Any]] | None: ...


class NoFallback:
    def order(self, order_id: str) -> dict[str, Any] | None:
        return None

    def products(self, product_id: str | None = None) -> list[dict[str, Any]] | None:
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

    def get(self, order_id: str) -> dict[str, Any] | None:
        data = decode_order(self._redis.hgetall(self._keys.order(order_id)))
        if data is not None and "status" in data:
            return order_view(order_id, data)
        row = self._fallback.order(order_id)
        return None if row is None else order_view(order_id, row)

    def status(self, order_id: str) -> str | None:
        found = self.get(order_id)
        return None if found is None else str(found["status"])


class ProductReader:
    def __init__(self, redis: Any, keys: Keys, fallback: Fallback) -> None:
        self._redis = redis
        self._keys = keys
        self._fallback = fallback

    def get(self, product_id: str) -> dict[str, Any] | None:
        found = decode_product(product_id, self._redis.hgetall(self._keys.product(product_id)))
        if found is not None:
            return found
        rows = self._fallback.products(product_id)
        return rows[0] if rows else None

    def all(self) -> list[dict[str, Any]]:
        ids = sorted(_s(i) for i in self._redis.smembers(self._keys.products()))
        if not ids:
            return self._fallback.products() or []
        pipe = self._redis.pipeline(transaction=False)
        for product_id in ids:
            pipe.hgetall(self._keys.product(product_id))
        found = (decode_product(pid, raw) for pid, raw in zip(ids, pipe.execute(), strict=True))
        return [p for p in found if p is not None]


class StatusWaiter:
    """One pub/sub connection per process; a request waits on an Event, not a connection.

    A waiter registers on its order's channel, waits until the channel's subscription is
    confirmed, then re-reads the status (so a change just before it subscribed is not
    missed), and re-checks every ``recheck_s`` in case a publish was lost (reconnects).

    Cheap per long-poll: SUBSCRIBE and UNSUBSCRIBE are written by one sender thread, which
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
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._confirmed: dict[str, threading.Event] = {}  # subscribed or being subscribed
        self._idle_since: dict[str, float] = {}  # subscribed, nobody waiting
        self._to_subscribe: list[str] = []
        self._wake_sender = threading.Event()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None

    def wait_for_change(
        self, reader: OrderReader, order_id: str, seen: str, timeout_s: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        channel = self._keys.order_channel(order_id)
        event = threading.Event()
        confirmed = self._register(channel, event)
        try:
            confirmed.wait(min(1.0, timeout_s))
            while True:
                current = reader.get(order_id)
                if current is None or current["status"] != seen:
                    return current
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return current
                event.wait(min(remaining, self._recheck_s))
                event.clear()
        finally:
            self._unregister(channel, event)

    def _register(self, channel: str, event: threading.Event) -> threading.Event:
        with self._lock:
            self._ensure_started()
            self._waiters.setdefault(channel, set()).add(event)
            self._idle_since.pop(channel, None)
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = threading.Event()
                self._to_subscribe.append(channel)
                self._wake_sender.set()
            return confirmed

    def _unregister(self, channel: str, event: threading.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(channel)
            if waiters is None:
                return
            waiters.discard(event)
            if not waiters:
                del self._waiters[channel]
                self._idle_since[channel] = time.monotonic()

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._pubsub = self._redis.pubsub()
            self._thread = threading.Thread(target=self._run, name="status-waiter", daemon=True)
            self._thread.start()
            sender = threading.Thread(target=self._send, name="status-subscriber", daemon=True)
            sender.start()

    def _send(self) -> None:
        """The only writer of SUBSCRIBE/UNSUBSCRIBE: batches them, drops idle channels."""
        while True:
            self._wake_sender.wait(max(0.2, self._linger_s / 2))
            self._wake_sender.clear()
            now = time.monotonic()
            with self._lock:
                subscribe, self._to_subscribe = self._to_subscribe, []
                stale = [c for c, t in self._idle_since.items() if now - t >= self._linger_s]
                for channel in stale:
                    del self._idle_since[channel]
                    self._confirmed.pop(channel, None)
            try:
                if stale:
                    self._pubsub.unsubscribe(*stale)
                if subscribe:
                    self._pubsub.subscribe(*subscribe)
            except Exception as exc:
                # waiters fall back to their periodic re-checks; a reconnect re-subscribes
                logger.warning("status subscriber: (un)subscribe failed: %s", exc)

    def _run(self) -> None:
        while True:
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except Exception as exc:
                logger.warning("status subscriber: %s", exc)
                time.sleep(0.5)
                continue
            if message is None:
                continue
            channel = _s(message["channel"])
            with self._lock:
                if message["type"] == "subscribe":
                    confirmed = self._confirmed.get(channel)
                    if confirmed is not None:
                        confirmed.set()
                elif message["type"] == "message":
                    for event in self._waiters.get(channel, ()):
                        event.set()

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
