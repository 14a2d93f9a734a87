"""PostgreSQL or Redis unavailable under the sink: it pauses and retries; nothing is lost,
skipped or duplicated. PostgreSQL is made unavailable for the test's own scratch database
only (connections refused and terminated), never for the shared stack."""

from __future__ import annotations

import dataclasses

import redis
import sqlalchemy as sa
from sink_helpers import (
    Producer,
    _superuser_conn,
    committed_order,
    count,
    offsets_caught_up,
    outbox_rows,
    sink_in_thread,
    statuses,
    wait_until,
)

from orderstream.core.readmodel import Keys, decode_order
from orderstream.core.settings import Settings
from schemas.topics import ORDERS_COMMITTED, ORDERS_SHIPPED


def _set_connections(database: str, allowed: bool) -> None:
    with _superuser_conn() as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )


def test_postgres_outage_pauses_the_sink_and_loses_nothing(
    sink_settings: Settings, sink_engine: sa.Engine, producer: Producer, namespace: str
) -> None:
    database = sa.make_url(sink_settings.database_url).database
    assert database and database.startswith("orderstream_test_")
    first = [f"{namespace}a{n}" for n in range(500)]
    second = [f"{namespace}b{n}" for n in range(1500)]
    for oid in first:
        producer.send(ORDERS_COMMITTED, oid, committed_order(oid))
    producer.flush()
    with sink_in_thread(sink_settings) as runner:
        wait_until(lambda: len(statuses(sink_engine, namespace)) == 500, 60, "first orders")
        _set_connections(database, allowed=False)
        try:
            for oid in second:
                producer.send(ORDERS_COMMITTED, oid, committed_order(oid))
            producer.flush()
            wait_until(lambda: runner.flush_failures >= 2, 60, "the sink to hit the outage")
        finally:
            _set_connections(database, allowed=True)
        sink_engine.dispose()  # the pool's connections were terminated
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 120, "caught up")
    by_status = statuses(sink_engine, namespace)
    assert set(by_status) == set(first + second)
    assert set(by_status.values()) == {"shipped"}
    shipped = outbox_rows(sink_engine, sink_settings.topics(ORDERS_SHIPPED))
    assert len(shipped) == 2000 and len({e for e, _, _ in shipped}) == 2000
    assert (
        count(
            sink_engine,
            "SELECT count(*) FROM order_items WHERE order_id LIKE :p",
            p=namespace + "%",
        )
        == 4000
    )


def test_read_model_is_written_and_redis_down_does_not_stop_the_sink(
    sink_settings: Settings,
    sink_engine: sa.Engine,
    producer: Producer,
    namespace: str,
    redis_client: redis.Redis,
) -> None:
    up, down = f"{namespace}up", f"{namespace}down"
    producer.send(ORDERS_COMMITTED, up, committed_order(up, lines=2))
    producer.flush()
    with sink_in_thread(sink_settings, with_read_model=True):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 60, "caught up")
    cached = decode_order(redis_client.hgetall(Keys(namespace).order(up)))
    assert cached is not None
    assert cached["status"] == "shipped" and cached["total"] == "9.75"
    assert [i["quantity"] for i in cached["items"]] == [1, 2]

    no_redis = dataclasses.replace(sink_settings, redis_url="redis://127.0.0.1:1/0")
    producer.send(ORDERS_COMMITTED, down, committed_order(down))
    producer.flush()
    with sink_in_thread(no_redis, with_read_model=True):
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 60, "caught up")
    assert statuses(sink_engine, namespace) == {up: "shipped", down: "shipped"}
