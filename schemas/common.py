"""Shared field types and helpers for records."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec

# 2 added the order details (shipping_address, payment_method): DESIGN.md, "Order details"
SCHEMA_VERSION = 2

ProductId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
CustomerId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")]
OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
Money = Decimal  # encoded as a decimal string, e.g. "19.99"

# Fixed namespace for deterministic event ids: the same fact always gets the same id,
# so a replayed event is recognisable downstream.
EVENT_NAMESPACE = uuid.UUID("5b0e7f3c-6a55-4d2a-9d5c-0f0e7a1c0de5")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_id_for(*parts: object) -> str:
    """A stable event id derived from what the event is about (never random): the UUIDv5
    (RFC 9562) of the parts joined by ``:`` in ``EVENT_NAMESPACE``, as ``uuid.uuid5``
    gives it, built from the SHA-1 digest directly: half the time of ``uuid.uuid5`` plus
    ``str`` (docs/decisions/0019)."""
    name = ":".join(str(p) for p in parts).encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Record(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    """Base of every record on the wire."""

    schema_version: int = SCHEMA_VERSION
