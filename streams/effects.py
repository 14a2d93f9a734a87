"""Turning the settlement's effects into output records and read-model writes."""

from __future__ import annotations

from collections.abc import Iterable

from schemas import codec
from streams.faustutil import Outbox
from streams.readmodel import ReadModelWriter
from streams.settlement import Effect, Emit
from streams.topics import StreamTopics


def deliver(
    effects: Iterable[Effect], outbox: Outbox, topics: StreamTopics, readmodel: ReadModelWriter
) -> None:
    """Queue every ``Emit`` on the outbox and every status update on the read model."""
    for effect in effects:
        if isinstance(effect, Emit):
            topic = topics.output(effect.topic).get_topic_name()
            outbox.add(topic, effect.key.encode(), codec.encode(effect.value))
        else:
            readmodel.enqueue_status(effect.order_id, effect.status, effect.fields)
