"""A worker dead-letters an undecodable record with the shared envelope, on its outbox."""

from __future__ import annotations

import json
from types import SimpleNamespace

from schemas import codec
from schemas.deadletter import DeadLetter, dead_letter_event_id
from streams.effects import dead_letter


class RecordingOutbox:
    def __init__(self) -> None:
        self.added: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self.added.append((topic, key, value, partition))


def test_an_undecodable_record_leaves_as_an_envelope_keyed_as_it_was() -> None:
    message = SimpleNamespace(
        topic="t.orders.reservations", partition=2, offset=17, key=b"o-1", value=b"\x00junk"
    )
    try:
        codec.reservation_stream_decoder.decode(message.value)
    except codec.DecodeError as exc:
        error = exc
    outbox = RecordingOutbox()
    dead_letter(outbox, "t.orders.deadletter", message, error, "app:settle_orders")  # type: ignore[arg-type]

    [(topic, key, value, partition)] = outbox.added
    assert (topic, key, partition) == ("t.orders.deadletter", b"o-1", None)
    letter = DeadLetter.parse(value)
    assert letter.event_id == dead_letter_event_id("t.orders.reservations", 2, 17)
    origin = (letter.source_topic, letter.partition, letter.offset)
    assert origin == ("t.orders.reservations", 2, 17)
    assert letter.consumer == "app:settle_orders"
    assert letter.reason == f"cannot decode: {error}"
    assert (letter.key, letter.value) == (b"o-1", b"\x00junk")
    assert json.loads(value or b"")["value"] == {"text": "\x00junk"}
