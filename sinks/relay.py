"""The outbox relay: publish unsent outbox rows, in id order, at least once.

Each round locks up to ``batch_size`` unsent rows (``FOR UPDATE SKIP LOCKED``, so
several relays can run), produces them with an idempotent, ``acks=all`` producer,
waits for every acknowledgement, then marks them ``sent_at`` in the same transaction.
A crash between the acks and the commit publishes those rows again: consumers dedupe
by ``event_id``. A round whose rows are not all acknowledged leaves them unsent and replaces
the producer: after a broker restart, kafka-python's idempotent producer can keep a
partition blocked on the sequence numbers of batches it expired, and then acknowledges
nothing more on it, however long the relay waits. The relay sleeps on
``LISTEN orderstream_outbox`` (the sink notifies in its transaction), with a short poll as
a fallback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Engine, delete, func, select, text

from orderstream.core import tracing
from orderstream.core.health import Heartbeat
from orderstream.core.tables import OUTBOX_CHANNEL, outbox
from sinks.backoff import Backoff
from sinks.uow import UnitOfWork

logger = logging.getLogger(__name__)


# clock_timestamp(): the time after the acks, not the transaction's start
_MARK_SENT = text("UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY(:ids)")


@dataclass
class RelayStats:
    sent: int = 0
    rounds: int = 0
    failures: int = 0
    producers_replaced: int = 0


RECONNECT_BACKOFF_MAX_MS = 1000


def make_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_in_flight_requests_per_connection=5,
        client_id="orderstream-relay",
        # kafka-python backs off reconnects up to 30 s: after a broker restart the relay sent
        # nothing for up to that long; 1 s, like the Java client
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
    )


class OutboxRelay:
    """Publishes the outbox with a producer from ``new_producer``, a new one after a
    failed round."""

    def __init__(
        self,
        engine: Engine,
        new_producer: Callable[[], KafkaProducer],
        batch_size: int = 1000,
        send_timeout_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self._new_producer = new_producer
        self._producer = new_producer()
        self._batch_size = batch_size
        self._send_timeout_s = send_timeout_s
        self.stats = RelayStats()

    def publish(self, rows: Sequence[tuple[str, str | None, str, str | None]]) -> None:
        """Send (topic, key, payload, trace) rows and wait for every ack; on a Kafka error
        the producer is replaced before the error is raised. A row with a trace is sent in
        a span continuing it, whose context its headers carry (``orderstream.core.tracing``)."""
        spans = []
        try:
            futures = []
            for topic, key, payload, trace in rows:
                span = tracing.start(
                    f"send {topic}",
                    tracing.traceparent_headers(trace),
                    kind="PRODUCER",
                    order_id=key,
                    **{"messaging.destination.name": topic},
                )
                if span is not None:
                    spans.append(span)
                futures.append(
                    self._producer.send(
                        topic,
                        key=None if key is None else key.encode("utf-8"),
                        value=payload.encode("utf-8"),
                        headers=tracing.headers_of(span),
                    )
                )
            self._producer.flush(timeout=self._send_timeout_s)
            for future in futures:
                future.get(timeout=self._send_timeout_s)  # raises if not acknowledged
        except KafkaError:
            self.stats.producers_replaced += 1
            logger.warning("not every outbox row was acknowledged; replacing the producer")
            self._replace_producer()
            raise
        finally:
            for span in spans:
                span.end()

    def _replace_producer(self) -> None:
        try:
            self._producer.close(timeout=0)  # abandons what it holds: those rows stay unsent
        except Exception:
            logger.exception("closing the relay's producer failed")
        self._producer = self._new_producer()

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)

    def relay_once(self) -> int:
        """Publish one batch of unsent rows; the number published (0: nothing to do)."""
        with UnitOfWork(self._engine) as uow:
            rows = uow.connection.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.trace)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            self.publish([(row.topic, row.key, row.payload, row.trace) for row in rows])
            uow.connection.execute(_MARK_SENT, {"ids": [row.id for row in rows]})
            uow.commit()
        self.stats.sent += len(rows)
        self.stats.rounds += 1
        return len(rows)

    def drain(self) -> int:
        total = 0
        while (sent := self.relay_once()) > 0:
            total += sent
        return total

    def purge_sent(self, older_than_s: float) -> int:
        with UnitOfWork(self._engine) as uow:
            result = uow.connection.execute(
                delete(outbox).where(
                    outbox.c.sent_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s)
                )
            )
            uow.commit()
        return result.rowcount or 0


class OutboxListener:
    """Waits for the sink's NOTIFY (a psycopg connection in autocommit mode); without a
    conninfo it only sleeps (plain polling, for comparison)."""

    def __init__(self, conninfo: str | None) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def wait(self, timeout_s: float) -> None:
        if self._conninfo is None:
            time.sleep(timeout_s)
            return
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
            for _ in self._conn.notifies(timeout=timeout_s, stop_after=1):
                pass
            for _ in self._conn.notifies(timeout=0.001):  # coalesce the ones queued meanwhile
                pass
        except psycopg.Error as error:
            logger.warning("LISTEN failed (%s); polling", error)
            self.close()
            time.sleep(timeout_s)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run_relay(
    relay: OutboxRelay,
    listener: OutboxListener,
    stop: threading.Event,
    poll_interval_s: float = 2.0,
    retention_s: float = 7 * 24 * 3600,
    on_round: Callable[[int], None] | None = None,
    heartbeat: Heartbeat | None = None,
) -> None:
    backoff = Backoff(max_s=5.0)
    next_purge = time.monotonic() + 60
    while not stop.is_set():
        if heartbeat is not None:
            heartbeat.beat()
        try:
            sent = relay.drain()
        except Exception as error:
            relay.stats.failures += 1
            logger.warning("relay round failed: %s", str(error).splitlines()[0][:300])
            stop.wait(backoff.next_delay())
            continue
        backoff.reset()
        if on_round is not None:
            on_round(sent)
        if time.monotonic() >= next_purge:
            next_purge = time.monotonic() + 60
            try:
                purged = relay.purge_sent(retention_s)
                if purged:
                    logger.info("purged %d sent outbox rows", purged)
            except Exception as error:
                logger.warning("outbox purge failed: %s", error)
        listener.wait(poll_interval_s)
    listener.close()
