"""The dead-letter envelope on ``orders.deadletter``: one format for every program.

A program that cannot process a record (the sink, the stock worker, the settler) sends
this envelope instead: where the record came from (``source_topic``, ``partition``,
``offset``), which program gave up (``consumer``), why (``reason``: the exception text),
when (``failed_at``), and the record's own ``key`` and ``value``, as ``{"text": ...}``
when they are UTF-8 and ``{"base64": ...}`` otherwise, so it can be replayed byte for byte
(``orderstream deadletters``). ``event_id`` is derived from (source topic, partition,
offset) only: processing the same record again (a crash, a rebalance) dead-letters it
under the same id, so readers dedupe by ``event_id``.

The envelope is for operators, not a public topic: it has its own format version,
``DEAD_LETTER_SCHEMA_VERSION``, not the order records' ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.common import event_id_for

DEAD_LETTER_SCHEMA_VERSION = 1


def dead_letter_event_id(topic: str, partition: int, offset: int) -> str:
    """The id of the dead letter of the record at ``topic[partition]@offset``."""
    return event_id_for(topic, partition, offset, "deadletter")


def dead_letter_envelope(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    consumer: str,
    failed_at: datetime | None = None,
) -> bytes:
    """The dead-letter value (JSON, sorted keys) of the record at ``topic[partition]@offset``."""
    envelope: dict[str, object] = {
        "event_id": dead_letter_event_id(topic, partition, offset),
        "schema_version": DEAD_LETTER_SCHEMA_VERSION,
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "consumer": consumer,
        "reason": reason,
        "failed_at": (failed_at or datetime.now(UTC)).isoformat(),
        "key": text_or_base64(key),
        "value": text_or_base64(value),
    }
    return json.dumps(envelope, sort_keys=True).encode()


def text_or_base64(data: bytes | None) -> dict[str, str] | None:
    if data is None:
        return None
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def original_bytes(field: object) -> bytes | None:
    """The bytes ``text_or_base64`` encoded (None stays None)."""
    if field is None:
        return None
    if isinstance(field, dict):
        if isinstance(field.get("text"), str):
            return str(field["text"]).encode("utf-8")
        if isinstance(field.get("base64"), str):
            return base64.b64decode(str(field["base64"]), validate=True)
    raise ValueError(f"not a dead-letter key or value: {field!r}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter envelope as read back from ``orders.deadletter``."""

    event_id: str
    source_topic: str
    partition: int
    offset: int
    consumer: str
    reason: str
    failed_at: datetime
    key: bytes | None
    value: bytes | None
    envelope: dict[str, Any]  # everything, as it was published

    @classmethod
    def parse(cls, raw: bytes | None) -> DeadLetter:
        """The envelope in ``raw``, or ``ValueError`` when it is not one (a raw record an
        older stock worker dead-lettered without an envelope, say)."""
        try:
            envelope = json.loads(raw or b"")
            failed_at = datetime.fromisoformat(envelope["failed_at"])
            return cls(
                event_id=str(envelope["event_id"]),
                source_topic=str(envelope["source_topic"]),
                partition=int(envelope["partition"]),
                offset=int(envelope["offset"]),
                consumer=str(envelope["consumer"]),
                reason=str(envelope["reason"]),
                failed_at=failed_at if failed_at.tzinfo else failed_at.replace(tzinfo=UTC),
                key=original_bytes(envelope.get("key")),
                value=original_bytes(envelope.get("value")),
                envelope=envelope,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a dead-letter envelope: {exc}") from exc
