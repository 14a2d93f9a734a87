"""The relay replaces a producer that did not acknowledge a round, and the round fails, so
its rows stay unsent for the next one."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from sinks.relay import OutboxRelay


class Future:
    def __init__(self, acked: bool) -> None:
        self._acked = acked

    def get(self, timeout: float) -> None:
        if not self._acked:
            raise KafkaTimeoutError("Timeout waiting for future")


class Producer:
    """Acknowledges every send unless ``wedged``."""

    def __init__(self, wedged: bool) -> None:
        self.wedged = wedged
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.closed = False

    def send(self, topic: str, key: bytes | None, value: bytes, headers: object = None) -> Future:
        self.sent.append((topic, key, value))
        return Future(acked=not self.wedged)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        self.closed = True


def relay_over(*producers: Producer) -> tuple[OutboxRelay, list[Producer]]:
    made: list[Producer] = []
    queue = list(producers)

    def new_producer() -> Any:
        made.append(queue.pop(0))
        return made[-1]

    return OutboxRelay(engine=None, new_producer=new_producer), made  # type: ignore[arg-type]


ROWS = [("orders.shipped", "o1", '{"order_id": "o1"}', None), ("orders.shipped", None, "{}", None)]


def test_a_round_not_acknowledged_fails_and_the_next_round_has_a_new_producer() -> None:
    relay, made = relay_over(Producer(wedged=True), Producer(wedged=False))

    with pytest.raises(KafkaTimeoutError):
        relay.publish(ROWS)
    assert made[0].closed and len(made) == 2
    assert relay.stats.producers_replaced == 1

    relay.publish(ROWS)  # the same rows again, on the new producer
    assert made[1].sent == [
        ("orders.shipped", b"o1", b'{"order_id": "o1"}'),
        ("orders.shipped", None, b"{}"),
    ]
    assert relay.stats.producers_replaced == 1


def test_an_acknowledged_round_keeps_its_producer() -> None:
    relay, made = relay_over(Producer(wedged=False), Producer(wedged=False))

    relay.publish(ROWS)
    relay.publish(ROWS)
    assert len(made) == 1 and not made[0].closed
