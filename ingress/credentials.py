"""The sign-in request bodies and the rules for emails, passwords and names (pure).

A password is 10 to 128 characters (128 characters of UTF-8 are at most 512 bytes, within
the 1 KB bound), not one of the passwords most often leaked, not one character repeated
and not the email itself. The length bound comes before any hashing, so a long "password"
costs nothing. Every problem names its field (422).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import msgspec

from ingress.errors import FieldError, ValidationFailed

MIN_PASSWORD, MAX_PASSWORD, MAX_PASSWORD_BYTES = 10, 128, 1024
MAX_EMAIL, MAX_NAME = 254, 100
EMAIL = re.compile(r"^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$")

# Passwords of at least 10 characters found most often in public breach corpora (a small
# sample: the length rule rules out the shorter ones).
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789a",
        "0123456789",
        "0987654321",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "qwerty123456",
        "asdfghjkl1",
        "zxcvbnm123",
        "password12",
        "password123",
        "password1234",
        "password1!",
        "passw0rd123",
        "iloveyou12",
        "iloveyou123",
        "princess123",
        "sunshine123",
        "football123",
        "baseball123",
        "welcome123",
        "welcome1234",
        "letmein123",
        "abc1234567",
        "abcdefghij",
        "abcd123456",
        "a123456789",
        "qazwsxedc123",
        "changeme123",
        "administrator",
        "admin12345",
        "superman123",
        "trustno1234",
        "monkey1234",
        "dragon1234",
        "michael123",
    }
)

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=MAX_EMAIL)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
RefreshTokenValue = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class RegisterRequest(_Body, frozen=True):
    email: Email
    password: Password
    name: Name


class LoginRequest(_Body, frozen=True):
    email: Email
    password: Password


class RefreshRequest(_Body, frozen=True):
    refresh_token: RefreshTokenValue


def normalized_email(email: str) -> str:
    """The form emails are compared in (unique without regard to case)."""
    return email.strip().lower()


def email_problems(email: str) -> list[FieldError]:
    if len(email) > MAX_EMAIL or not EMAIL.match(email) or _has_control(email):
        return [FieldError("email", "an email address such as name@example.com")]
    return []


def password_problems(password: str, email: str) -> list[FieldError]:
    if len(password) > MAX_PASSWORD or len(password.encode()) > MAX_PASSWORD_BYTES:
        return [FieldError("password", f"at most {MAX_PASSWORD} characters")]
    if len(password) < MIN_PASSWORD:
        return [FieldError("password", f"at least {MIN_PASSWORD} characters")]
    folded = password.casefold()
    if folded in COMMON_PASSWORDS or len(set(folded)) == 1:
        return [FieldError("password", "too common; choose another")]
    if folded == email.strip().casefold():
        return [FieldError("password", "must not be the email")]
    return []


def name_problems(name: str) -> list[FieldError]:
    if not name.strip() or len(name) > MAX_NAME or _has_control(name):
        return [FieldError("name", f"1 to {MAX_NAME} printable characters")]
    return []


def check_registration(body: RegisterRequest) -> None:
    """Every problem of a registration at once, or nothing (422 ``ValidationFailed``)."""
    problems = [
        *email_problems(body.email),
        *password_problems(body.password, body.email),
        *name_problems(body.name),
    ]
    if problems:
        raise ValidationFailed(problems)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c).startswith("C") for c in text)
