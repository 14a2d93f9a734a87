"""One root exception for the benchmark harness."""

from __future__ import annotations


class BenchError(Exception):
    """Anything the harness cannot recover from."""


class SystemUnavailable(BenchError):
    """A system under test does not answer; the harness skips it."""


class DatabaseSetupError(BenchError):
    """A baseline's database could not be created or reached."""
