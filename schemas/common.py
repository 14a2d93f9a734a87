"""Shared field types and helpers for records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec

SCHEMA_VERSION = 1

ProductId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
CustomerId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")]
OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
Money = Decimal  # encoded as a decimal string, e.g. "19.99"

# Fixed namespace for deterministic event ids: the same fact always gets the same id,
# so a replayed event is recognisable downstream.
EVENT_NAMESPACE = uuid.UUID("5b0e7f3c-6a55-4d2a-9d5c-0f0e7a1c0de5")


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_id_for(*parts: object) -> str:
    """A stable event id derived from what the event is about (never random)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, ":".join(str(p) for p in parts)))


class Record(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    """Base of every record on the wire."""

    schema_version: int = SCHEMA_VERSION
