"""Export JSON Schemas of the public topics (``orderstream schemas export DIR``).

The exported files are committed under ``schemas/json`` and referenced by
``schemas/asyncapi.yaml``; a unit test fails when they differ from what this exports.
"""

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
COMMITTED_DIR = Path(__file__).resolve().parent / "json"


def json_schema(topic: str) -> dict[str, object]:
    schema = msgspec.json.schema(PUBLIC_RECORDS[topic])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = topic
    return schema


def file_name(topic: str) -> str:
    return f"{topic}.schema.json"


def render(topic: str) -> str:
    """The exported file's text (stable: sorted keys, two-space indent, final newline)."""
    return json.dumps(json_schema(topic), indent=2, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in PUBLIC_RECORDS:
        path = directory / file_name(topic)
        path.write_text(render(topic))
        written.append(path)
    return written
