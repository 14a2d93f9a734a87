"""Customers, their sessions and refresh tokens in PostgreSQL (SQLAlchemy Core, sync).

Writes go to the primary (``settings.database_url``), never a replica: a sign-in must see
the registration before it. Every method is one transaction, run by the caller in a thread
(``asyncio.to_thread``). A refused request changes nothing, with one deliberate exception:
a refresh token presented a second time revokes its whole session (RFC 9700 §4.14.2: one
of the two holders is not the customer, and we cannot tell which).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ingress.errors import Unavailable
from ingress.store import ingress_engine
from orderstream.core.tables import customer_sessions, customers, refresh_tokens

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Customer:
    customer_id: str
    email: str
    name: str
    created_at: datetime

    def view(self) -> dict[str, str]:
        return {
            "customer_id": self.customer_id,
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Credentials:
    customer: Customer
    password_hash: str


@dataclass(frozen=True)
class Refresh:
    """What presenting a refresh token did: ``rotated`` (the new one was stored),
    ``reused`` (it had been used: the session is now revoked), ``invalid`` (unknown,
    expired, or of a revoked session: nothing changed)."""

    outcome: Literal["rotated", "reused", "invalid"]
    customer_id: str | None = None
    session_id: str | None = None


class AccountStore(Protocol):
    def add_customer(self, customer: Customer, password_hash: str) -> bool:
        """False (nothing written) when the email is taken, in any case."""

    def credentials(self, email: str) -> Credentials | None: ...

    def customer(self, customer_id: str) -> Customer | None: ...

    def set_password_hash(self, customer_id: str, old: str, new: str) -> None:
        """Replace the hash, unless it changed since it was read as ``old``."""

    def open_session(
        self, customer_id: str, session_id: str, token_hash: str, expires_at: datetime
    ) -> None: ...

    def rotate(
        self, token_hash: str, new_hash: str, expires_at: datetime, now: datetime
    ) -> Refresh: ...

    def revoke(self, token_hash: str, reason: str, now: datetime) -> str | None:
        """Revoke the session of a refresh token; its id, or None for an unknown token."""

    def revoke_session(self, session_id: str, reason: str, now: datetime) -> None: ...


class SqlAccounts:
    def __init__(self, database_url: str) -> None:
        self._url = database_url

    @functools.cached_property
    def engine(self) -> sa.Engine:  # made at first use: the app starts without PostgreSQL
        return ingress_engine(self._url, max_overflow=4)

    def add_customer(self, customer: Customer, password_hash: str) -> bool:
        row = {
            "customer_id": customer.customer_id,
            "email": customer.email,
            "name": customer.name,
            "password_hash": password_hash,
            "created_at": customer.created_at,
            "updated_at": customer.created_at,
        }
        try:
            with self._begin() as conn:
                conn.execute(sa.insert(customers).values(row))
        except sa_exc.IntegrityError:  # customers_email_lower: the email is taken
            return False
        return True

    def credentials(self, email: str) -> Credentials | None:
        query = sa.select(customers).where(sa.func.lower(customers.c.email) == email.lower())
        with self._begin() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else Credentials(_customer(row), row["password_hash"])

    def customer(self, customer_id: str) -> Customer | None:
        query = sa.select(customers).where(customers.c.customer_id == customer_id)
        with self._begin() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _customer(row)

    def set_password_hash(self, customer_id: str, old: str, new: str) -> None:
        with self._begin() as conn:
            conn.execute(
                sa.update(customers)
                .where(customers.c.customer_id == customer_id, customers.c.password_hash == old)
                .values(password_hash=new, updated_at=sa.func.now())
            )

    def open_session(
        self, customer_id: str, session_id: str, token_hash: str, expires_at: datetime
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                sa.insert(customer_sessions).values(session_id=session_id, customer_id=customer_id)
            )
            conn.execute(
                sa.insert(refresh_tokens).values(
                    token_hash=token_hash, session_id=session_id, expires_at=expires_at
                )
            )

    def rotate(
        self, token_hash: str, new_hash: str, expires_at: datetime, now: datetime
    ) -> Refresh:
        rt, s = refresh_tokens.c, customer_sessions.c
        query = (
            sa.select(rt.session_id, rt.expires_at, rt.used_at, s.customer_id, s.revoked_at)
            .join_from(refresh_tokens, customer_sessions)
            .where(rt.token_hash == token_hash)
            .with_for_update()  # one presentation of a token at a time
        )
        with self._begin() as conn:
            row = conn.execute(query).first()
            if row is None or row.revoked_at is not None:
                return Refresh("invalid")
            if row.used_at is not None:
                _revoke(conn, row.session_id, "refresh_token_reused", now)
                logger.warning(
                    "session %s: a used refresh token came back; revoked", row.session_id
                )
                return Refresh("reused", row.customer_id, row.session_id)
            if row.expires_at <= now:
                return Refresh("invalid")
            conn.execute(
                sa.update(refresh_tokens).where(rt.token_hash == token_hash).values(used_at=now)
            )
            conn.execute(
                sa.insert(refresh_tokens).values(
                    token_hash=new_hash, session_id=row.session_id, expires_at=expires_at
                )
            )
            return Refresh("rotated", row.customer_id, row.session_id)

    def revoke(self, token_hash: str, reason: str, now: datetime) -> str | None:
        query = sa.select(refresh_tokens.c.session_id).where(
            refresh_tokens.c.token_hash == token_hash
        )
        with self._begin() as conn:
            session_id = conn.execute(query).scalar()
            if session_id is not None:
                _revoke(conn, session_id, reason, now)
        return session_id

    def revoke_session(self, session_id: str, reason: str, now: datetime) -> None:
        with self._begin() as conn:
            _revoke(conn, session_id, reason, now)

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """One transaction; a database that cannot be reached is 503 ``Unavailable``."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa_exc.OperationalError, sa_exc.TimeoutError) as exc:
            logger.warning("customer store unavailable: %s", exc)
            raise Unavailable("the customer store is unavailable") from None


def _revoke(conn: sa.Connection, session_id: str, reason: str, now: datetime) -> None:
    conn.execute(
        sa.update(customer_sessions)
        .where(
            customer_sessions.c.session_id == session_id, customer_sessions.c.revoked_at.is_(None)
        )
        .values(revoked_at=now, revoked_reason=reason)
    )


def _customer(row: Any) -> Customer:
    return Customer(row["customer_id"], row["email"], row["name"], row["created_at"])
