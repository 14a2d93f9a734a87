"""Turning the settlement's effects into output records and read-model writes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from orderstream.core.logs import context
from schemas import codec
from schemas.deadletter import dead_letter_envelope
from streams.faustutil import Headers, Outbox
from streams.readmodel import ReadModelWriter
from streams.settlement import Effect, Emit
from streams.topics import StreamTopics

logger = logging.getLogger(__name__)


def deliver(
    effects: Iterable[Effect],
    outbox: Outbox,
    topics: StreamTopics,
    readmodel: ReadModelWriter,
    headers: Headers | None = None,
) -> None:
    """Queue every ``Emit`` on the outbox, with ``headers`` (the trace's context, when
    traced), and every status update on the read model."""
    for effect in effects:
        if isinstance(effect, Emit):
            topic = topics.output(effect.topic).get_topic_name()
            outbox.add(topic, effect.key.encode(), codec.encode(effect.value), headers=headers)
        else:
            readmodel.enqueue_status(effect.order_id, effect.status, effect.fields)


def dead_letter(
    outbox: Outbox, topic: str, message: Any, error: BaseException, consumer: str
) -> None:
    """Queue the dead letter of a record that cannot be processed (``schemas.deadletter``)
    on the outbox: it leaves with the batch, before the offset past the record is committed.
    ``message`` is the Faust message (topic, partition, offset, key, value)."""
    reason = f"cannot decode: {error}"
    logger.error(
        "dead-lettering %s[%d]@%d: %s",
        message.topic,
        message.partition,
        message.offset,
        reason,
        extra=context(topic=message.topic, partition=message.partition, offset=message.offset),
    )
    envelope = dead_letter_envelope(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        reason=reason,
        consumer=consumer,
    )
    outbox.add(topic, message.key, envelope)
