"""A customer's order history, newest first, a page at a time (``GET /v1/customers/.../orders``).

Two sources, merged by (time, order id) descending:

- **PostgreSQL** holds the settled orders (terminal: ``orders`` is written once, final),
  read by keyset from ``settings.read_database_url`` on ``orders_customer_history``
  ``(customer_id, created_at DESC, order_id DESC)``: one index range per page, however many
  orders there are.
- **Redis** holds the customer's latest ``CUSTOMER_RECENT_ORDERS`` order ids
  (``Keys.customer_orders``, written by the admission script), which covers the orders still
  on their way (accepted, committed) that PostgreSQL does not hold yet. Their views come from
  the read model (PostgreSQL once the hash has expired).

An order in the Redis index is placed by its placement time and left out of the PostgreSQL
page; an older one by the time its row was written (``orders.created_at``, usually a
fraction of a second later). The cursor (``next``) is the last listed order's (time, id),
opaque to clients.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ingress.errors import FieldError, ValidationFailed
from ingress.readside import order_view
from orderstream.core.readmodel import Keys, decode_order

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDER_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True, order=True)
class Position:
    """Where an order sits in a history: its time (µs since the epoch), then its id."""

    at_us: int
    order_id: str

    def cursor(self) -> str:
        raw = f"{self.at_us}:{self.order_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, cursor: str) -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            at, _, order_id = raw.partition(":")
            if not _ORDER_ID.match(order_id) or not at.isdigit():
                raise ValueError(raw)
            return cls(int(at), order_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationFailed(
                [FieldError("query:after", "the `next` of a previous page")]
            ) from None

    @property
    def created_at(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.at_us)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class HistoryStore(Protocol):
    def customer_orders(
        self, customer_id: str, before: Position | None, exclude: list[str], limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` settled orders of the customer before ``before``, newest first,
        none of ``exclude``; each with ``created_at`` (a datetime) and what ``order_view``
        reads."""

    def orders_by_id(self, order_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class NoHistory:
    def customer_orders(
        self, customer_id: str, before: Position | None, exclude: list[str], limit: int
    ) -> list[dict[str, Any]]:
        return []

    def orders_by_id(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {}


class OrderHistory:
    def __init__(self, redis: Any, keys: Keys, store: HistoryStore) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store

    async def page(
        self, customer_id: str, limit: int, after: Position | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` orders after ``after`` and the cursor of the next page (None: the
        last page)."""
        raw = await self._redis.zrange(
            self._keys.customer_orders(customer_id), 0, -1, desc=True, withscores=True
        )
        recent = [Position(int(score), _s(member)) for member, score in raw]
        listed = [p for p in recent if after is None or p < after]
        rows = await asyncio.to_thread(
            self._store.customer_orders,
            customer_id,
            after,
            [p.order_id for p in recent],
            limit + 1,
        )
        by_id = {r["order_id"]: r for r in rows}
        settled = [Position(micros(r["created_at"]), r["order_id"]) for r in rows]
        candidates = sorted([*listed[: limit + 1], *settled], reverse=True)
        page, more = candidates[:limit], len(candidates) > limit
        views = await self._recent_views([p for p in page if p.order_id not in by_id])
        items = []
        for position in page:
            data = views.get(position.order_id) or by_id.get(position.order_id)
            if data is None:  # never reached Kafka (503 outcome-unknown, not retried)
                continue
            view = order_view(position.order_id, data)
            view["created_at"] = position.created_at.isoformat()
            items.append(view)
        return items, page[-1].cursor() if more else None

    async def _recent_views(self, positions: list[Position]) -> dict[str, dict[str, Any]]:
        """The read model's data of orders in the Redis index; PostgreSQL's for those whose
        hash has expired."""
        raws = await asyncio.gather(
            *(self._redis.hgetall(self._keys.order(p.order_id)) for p in positions)
        )
        found: dict[str, dict[str, Any]] = {}
        for position, raw in zip(positions, raws, strict=True):
            data = decode_order(raw)
            if data is not None and "status" in data:
                found[position.order_id] = data
        missing = [p.order_id for p in positions if p.order_id not in found]
        if missing:
            found.update(await asyncio.to_thread(self._store.orders_by_id, missing))
        return found


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
