"""The topics the stream processors read and write (names under the settings' prefix).

Values are raw bytes (plain JSON via ``schemas.codec``, no Faust metadata); keys are the
raw UTF-8 bytes of product_id / order_id, so aiokafka's default murmur2 partitioner puts
a key where kafka-python (the ingress) and the Java client put it.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from orderstream.core.settings import Settings
from schemas import topics as names


@dataclass(frozen=True)
class StreamTopics:
    stock_source: faust.TopicT  # orders.requests + inventory.commands (keyed by product)
    settle_source: faust.TopicT  # orders.reservations + orders.cancellations (keyed by order)
    outputs: dict[str, faust.TopicT]  # logical name -> topic we produce to

    def output(self, name: str) -> faust.TopicT:
        return self.outputs[name]


def _raw(app: faust.App, *topic_names: str) -> faust.TopicT:
    return app.topic(
        *topic_names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def declare_topics(app: faust.App, settings: Settings) -> StreamTopics:
    t = settings.topics
    produced = (
        names.ORDER_RESERVATIONS,
        names.INVENTORY_COMMANDS,
        names.ORDERS_COMMITTED,
        names.ORDERS_REJECTED,
        names.ORDERS_CANCELLED,
        names.DEAD_LETTER,
    )
    return StreamTopics(
        stock_source=_raw(app, t(names.ORDER_REQUESTS), t(names.INVENTORY_COMMANDS)),
        settle_source=_raw(app, t(names.ORDER_RESERVATIONS), t(names.ORDER_CANCELLATIONS)),
        outputs={name: _raw(app, t(name)) for name in produced},
    )
