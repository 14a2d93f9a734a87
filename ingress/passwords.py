"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing is memory-hard and CPU-heavy by design (``argon2_*`` settings; the defaults are
OWASP's 19 MiB, 2 passes, 1 lane), so it runs in a thread (``asyncio.to_thread``) and at
most ``concurrency`` hashes run at once per worker: a burst of sign-ins queues instead of
starving the order path. An unknown email is verified against a dummy hash, so it takes
as long as a wrong password.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")


class PasswordHasher:
    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 2
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None  # made on the worker's loop
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no ``stored`` hash (no such
        account), the same work against a dummy hash, and False."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            await self._run(self._check, self._dummy, password)
            return False
        return await self._run(self._check, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        """The hash was made with other parameters than today's: hash again at sign-in."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        async with self._slots:
            return await asyncio.to_thread(fn, *args)
