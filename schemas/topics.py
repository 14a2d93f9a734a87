"""Topic names and partition counts.

Every topic keyed by product id (``orders.requests``, ``inventory.commands``) and
every topic keyed by order id shares one partition count, so the Faust tables fed
by them are co-partitioned with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PARTITIONS = 8

# keyed by product_id
ORDER_REQUESTS = "orders.requests"
INVENTORY_COMMANDS = "inventory.commands"
# keyed by order_id
ORDER_RESERVATIONS = "orders.reservations"
ORDER_CANCELLATIONS = "orders.cancellations"
ORDERS_COMMITTED = "orders.committed"
ORDERS_REJECTED = "orders.rejected"
ORDERS_CANCELLED = "orders.cancelled"
ORDERS_SHIPPED = "orders.shipped"
DEAD_LETTER = "orders.deadletter"

KEYED_BY_PRODUCT = (ORDER_REQUESTS, INVENTORY_COMMANDS)
KEYED_BY_ORDER = (
    ORDER_RESERVATIONS,
    ORDER_CANCELLATIONS,
    ORDERS_COMMITTED,
    ORDERS_REJECTED,
    ORDERS_CANCELLED,
    ORDERS_SHIPPED,
    DEAD_LETTER,
)
ALL_TOPICS = KEYED_BY_PRODUCT + KEYED_BY_ORDER

# What downstream systems may consume; their JSON Schemas are exported by schemas.export.
PUBLIC_TOPICS = (ORDERS_COMMITTED, ORDERS_REJECTED, ORDERS_CANCELLED, ORDERS_SHIPPED)


@dataclass(frozen=True)
class TopicNames:
    """Topic names under an optional prefix (tests give each run its own namespace)."""

    prefix: str = ""

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def all(self) -> tuple[str, ...]:
        return tuple(self(name) for name in ALL_TOPICS)
