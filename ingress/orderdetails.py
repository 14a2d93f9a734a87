"""An order's details checked at the edge: where it ships to and how it is paid.

The shapes (msgspec, unknown fields forbidden) bound every field; ``check_details`` adds
what a pattern cannot say: the country is an assigned ISO 3166-1 alpha-2 code (the list
``pycountry`` ships, kept current by its maintainers from ISO's data, rather than a copy
of our own that would go stale), and the payment reference holds no card number. The
ingress never accepts card data: a payment is a provider's token or reference.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
import pycountry

from ingress.errors import FieldError
from schemas import orders as contract

# printable text, no control characters (a line break in an address line is a mistake)
AddressText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
OptionalAddressText = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
PostalCode = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=20,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?$",
        description="letters and digits, with spaces or dashes between them",
        examples=["75001", "SW1A 1AA"],
    ),
]
CountryCode = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z]{2}$",
        description="an assigned ISO 3166-1 alpha-2 code, upper case",
        examples=["FR"],
    ),
]
Phone = Annotated[
    str,
    msgspec.Meta(
        max_length=30,
        pattern=r"^\+[1-9](?:[ -]?[0-9]){6,14}$",
        description="E.164: + and the country code, 7 to 15 digits in all, "
        "single spaces or dashes allowed between digits",
        examples=["+33 1 23 45 67 89"],
    ),
]
PaymentToken = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=256,
        pattern=r"^[\x20-\x7e]+$",
        description="the payment provider's token or reference (never card data: "
        "anything that looks like a card number is refused)",
        examples=["tok_1Nf2Zq2eZvKYlo2C"],
    ),
]

ASSIGNED_COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
CARD_DATA = "card data is not accepted: send the payment provider's token or reference"

# groups of digits with up to three separators between them: white space, dashes, dots,
# underscores or slashes ("4111 1111-1111 1111", "4111.1111.1111.1111", "4111 - 1111 - ...")
_SEPARATOR_CHARS = r"[\s._/-]{1,3}"
_DIGIT_RUN = re.compile(rf"[0-9]+(?:{_SEPARATOR_CHARS}[0-9]+)*")
_SEPARATOR = re.compile(_SEPARATOR_CHARS)
CARD_DIGITS = (13, 19)


class ShippingAddress(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Where the order ships to; ``name`` is the recipient."""

    name: AddressText
    line1: AddressText
    line2: OptionalAddressText | None = None
    city: AddressText
    region: OptionalAddressText | None = None
    postal_code: PostalCode
    country: CountryCode
    phone: Phone | None = None


class PaymentMethod(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A reference to a payment instrument held by the payment provider (never card data)."""

    type: Literal["card", "paypal", "invoice"]
    token: PaymentToken


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    total = 0
    for i, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when ``text`` holds, anywhere, 13 to 19 Luhn-valid digits written as one group or
    as consecutive groups with one to three separators (white space, ``-``, ``.``, ``_``, ``/``)
    between them: a card number, also one
    followed by more groups ("4111 1111 1111 1111 123"). Digits glued to a card number with
    no separator make a longer number, which is not one."""
    low, high = CARD_DIGITS
    for run in _DIGIT_RUN.findall(text):
        groups = _SEPARATOR.split(run)
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > high:
                    break
                if len(digits) >= low and luhn_valid(digits):
                    return True
    return False


def check_details(
    address: ShippingAddress | None, payment: PaymentMethod | None
) -> list[FieldError]:
    """What the shapes cannot check: blank texts, an unassigned country, card data."""
    errors: list[FieldError] = []
    if address is not None:
        for field in ("name", "line1", "city"):
            if not getattr(address, field).strip():
                errors.append(FieldError(f"shipping_address.{field}", "must not be blank"))
        if address.country not in ASSIGNED_COUNTRIES:
            errors.append(
                FieldError("shipping_address.country", "not an assigned ISO 3166-1 alpha-2 code")
            )
    if payment is not None and looks_like_card_number(payment.token):
        errors.append(FieldError("payment_method.token", CARD_DATA))
    return errors


def address_record(address: ShippingAddress | None) -> contract.ShippingAddress | None:
    """The contract's record of a checked address (``schemas.orders.ShippingAddress``)."""
    if address is None:
        return None
    return contract.ShippingAddress(**msgspec.structs.asdict(address))


def payment_record(payment: PaymentMethod | None) -> contract.PaymentReference | None:
    """The contract's record of a checked payment reference."""
    if payment is None:
        return None
    return contract.PaymentReference(type=payment.type, token=payment.token)
