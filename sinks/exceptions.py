"""One root exception for the sink package."""

from __future__ import annotations


class SinkError(Exception):
    """Root of every error raised by the sink, the relay or the migrations."""


class PoisonRecord(SinkError):
    """A record that can never be projected (cannot be parsed, or fails for a data reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DataProblem(SinkError):
    """A batch failed for a data reason; bisecting it finds the poison record."""


class RelayError(SinkError):
    """The relay could not publish a batch of outbox rows (it is retried)."""


class LockLost(SinkError):
    """This process no longer owns its shard's lock: it must write nothing more (it stops)."""
