"""The password, email and name rules (ingress.credentials) and argon2id hashing."""

from __future__ import annotations

import asyncio

import pytest

from ingress.credentials import (
    RegisterRequest,
    check_registration,
    email_problems,
    name_problems,
    password_problems,
)
from ingress.errors import ValidationFailed
from ingress.passwords import PasswordHasher

EMAIL = "buyer@example.com"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 10"),
        ("123456789", "at least 10"),
        ("x" * 129, "at most 128"),
        ("é" * 129, "at most 128"),
        ("1234567890", "too common"),
        ("Password123", "too common"),
        ("QWERTYUIOP", "too common"),
        ("aaaaaaaaaaaa", "too common"),
        (EMAIL, "not be the email"),
        (EMAIL.upper(), "not be the email"),
    ],
)
def test_weak_or_oversized_passwords_are_named(password: str, why: str) -> None:
    (problem,) = password_problems(password, EMAIL)
    assert problem.field == "password"
    assert why in problem.message


@pytest.mark.parametrize("password", ["correct horse battery", "xy" * 64, "Tr0ub4dor&3xyz"])
def test_good_passwords_pass(password: str) -> None:
    assert password_problems(password, EMAIL) == []


@pytest.mark.parametrize(
    "email", ["", "plain", "a@b", "a@@b.com", "a b@c.com", "@b.com", "a@.com", "a@b.", "a\n@b.com"]
)
def test_bad_emails_are_named(email: str) -> None:
    assert [p.field for p in email_problems(email)] == ["email"]


@pytest.mark.parametrize("email", [EMAIL, "First.Last+tag@mail.example.co.uk"])
def test_good_emails_pass(email: str) -> None:
    assert email_problems(email) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there"])
def test_bad_names_are_named(name: str) -> None:
    assert [p.field for p in name_problems(name)] == ["name"]


def test_a_registration_reports_every_problem_at_once() -> None:
    body = RegisterRequest(email="nope", password="short", name="")
    with pytest.raises(ValidationFailed) as caught:
        check_registration(body)
    assert [e.field for e in caught.value.errors or []] == ["email", "password", "name"]


def test_hashes_are_argon2id_verify_and_are_renewed_when_the_parameters_change() -> None:
    light = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    heavier = PasswordHasher(time_cost=2, memory_kib=2048, parallelism=1)

    async def run() -> None:
        stored = await light.hash("correct horse battery")
        assert stored.startswith("$argon2id$")
        assert await light.verify(stored, "correct horse battery")
        assert not await light.verify(stored, "wrong horse battery")
        assert not await light.verify("not a hash", "correct horse battery")
        assert not await light.verify(None, "correct horse battery")  # the dummy's work
        assert not light.needs_rehash(stored)
        assert heavier.needs_rehash(stored)

    asyncio.run(run())
