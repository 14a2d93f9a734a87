"""JSON encoding and decoding of records (msgspec; Decimal as string, datetime ISO-8601)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from schemas.inventory import InventoryCommand
from schemas.orders import (
    OrderCancelled,
    OrderCommitted,
    OrderLineRequested,
    OrderRejected,
    OrderShipped,
    ReservationStreamRecord,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder(decimal_format="string")

order_request_decoder = msgspec.json.Decoder(OrderLineRequested)
inventory_command_decoder = msgspec.json.Decoder(InventoryCommand)
reservation_stream_decoder = msgspec.json.Decoder(ReservationStreamRecord)
order_event_decoder = msgspec.json.Decoder(
    OrderCommitted | OrderRejected | OrderCancelled | OrderShipped
)


def encode(record: Any) -> bytes:
    return _encoder.encode(record)


def decode(data: bytes | str, type_: type[T]) -> T:
    return msgspec.json.decode(data, type=type_)


DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError
