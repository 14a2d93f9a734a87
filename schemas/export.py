"""Export JSON Schemas of the public topics (``orderstream schemas export DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from schemas import topics
from schemas.orders import OrderCancelled, OrderCommitted, OrderRejected, OrderShipped

PUBLIC_RECORDS: dict[str, type] = {
    topics.ORDERS_COMMITTED: OrderCommitted,
    topics.ORDERS_REJECTED: OrderRejected,
    topics.ORDERS_CANCELLED: OrderCancelled,
    topics.ORDERS_SHIPPED: OrderShipped,
}


def json_schema(topic: str) -> dict[str, object]:
    schema = msgspec.json.schema(PUBLIC_RECORDS[topic])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = topic
    return schema


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in PUBLIC_RECORDS:
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(json_schema(topic), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
