"""Typed request bodies checked at the edge (msgspec), plus the limits that come from settings.

Every body forbids unknown fields, so a client-sent price (``items[].price``, ``total``)
is a 422, never silently ignored. Money is a decimal string; a JSON number is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, TypeVar

import msgspec

from ingress.errors import (
    FieldError,
    IdempotencyKeyMissing,
    MalformedJSON,
    ValidationFailed,
    field_error,
)
from ingress.orderdetails import PaymentMethod, ShippingAddress, check_details
from orderstream.core.settings import Settings
from schemas.common import CustomerId, ProductId

T = TypeVar("T")

MoneyString = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$",
        description='A decimal string such as "19.99" (never a JSON number).',
        examples=["19.99"],
    ),
]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every request body."""


class OrderLine(Body, frozen=True):
    product_id: ProductId
    quantity: Quantity


class OrderRequest(Body, kw_only=True, frozen=True):
    # required with a storefront or admin key; under a customer token, the token's (if sent,
    # it must be the same)
    customer_id: CustomerId | None = None
    items: Annotated[list[OrderLine], msgspec.Meta(min_length=1)]
    shipping_address: ShippingAddress | None = None
    payment_method: PaymentMethod | None = None
    expected_total: MoneyString | None = None


class ProductUpsert(Body, frozen=True):
    name: Text
    price: MoneyString
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    stock: Stock | None = None
    limit_per_customer: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class RestockRequest(Body, frozen=True):
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


_decoders: dict[type, msgspec.json.Decoder] = {}


def decode(body: bytes, type_: type[T]) -> T:
    """Decode and type-check ``body``; raises MalformedJSON (400) or ValidationFailed (422)."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([field_error(str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise MalformedJSON(str(exc)) from None


def check_order(order: OrderRequest, settings: Settings) -> None:
    """The order limits that depend on settings; collects every problem before raising."""
    errors: list[FieldError] = []
    if len(order.items) > settings.max_lines:
        errors.append(FieldError("items", f"at most {settings.max_lines} lines"))
    seen: set[str] = set()
    for i, line in enumerate(order.items):
        if line.quantity > settings.max_quantity:
            errors.append(
                FieldError(f"items[{i}].quantity", f"at most {settings.max_quantity} units")
            )
        if line.product_id in seen:
            errors.append(
                FieldError(f"items[{i}].product_id", "duplicate product; merge the lines")
            )
        seen.add(line.product_id)
    if order.expected_total is not None and Decimal(order.expected_total) >= settings.max_total:
        errors.append(FieldError("expected_total", "too large"))
    errors += check_details(order.shipping_address, order.payment_method)
    if errors:
        raise ValidationFailed(errors)


def check_idempotency_key(value: str | None) -> str:
    if value is None:
        raise IdempotencyKeyMissing()
    if not IDEMPOTENCY_KEY.match(value):
        raise ValidationFailed(
            [FieldError("header:Idempotency-Key", "1 to 255 visible ASCII characters")]
        )
    return value


def check_product_id(product_id: str, field: str = "path:product_id") -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", product_id):
        raise ValidationFailed([FieldError(field, "must match [A-Za-z0-9._-]{1,64}")])
    return product_id


DEFAULT_PAGE, MAX_PAGE = 100, 1000  # GET /v1/products?limit=
