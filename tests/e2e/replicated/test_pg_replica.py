"""The PostgreSQL read/write split: the sink writes to the primary, stale-tolerant reads (the
ingress's fallback GETs, reconcile's scans) go to the streaming replica, and the sink shows
the replica's lag. Black-box: HTTP, SQL on each server, /metrics, and the supervised
processes' signals."""

from __future__ import annotations

import signal
import time
import urllib.request
import uuid

import redis
import sqlalchemy as sa

from orderstream.client import OrderstreamClient
from orderstream.core import replica
from orderstream.core.readmodel import Keys
from orderstream.stack import database
from tests.chaos import checks
from tests.chaos.stackctl import LocalStack, process_tree, send, wait_for


def client(local: LocalStack) -> OrderstreamClient:
    s = local.settings
    return OrderstreamClient(s.ingress_url, s.storefront_key, s.admin_key)


def shipped_orders(api: OrderstreamClient, product_id: str, count: int) -> list[str]:
    """``count`` single-unit orders of ``product_id``, each followed until it ships."""
    found = []
    for _ in range(count):
        order = api.buy(f"replica-{uuid.uuid4().hex[:8]}", [(product_id, 1)])
        assert order["status"] == "shipped", order
        found.append(order["order_id"])
    return found


def statuses(engine: sa.Engine, order_ids: list[str]) -> dict[str, str]:
    query = sa.text("SELECT order_id, status FROM orders WHERE order_id = ANY(:ids)")
    with engine.connect() as conn:
        return {row.order_id: row.status for row in conn.execute(query, {"ids": order_ids})}


def test_the_replica_follows_the_primary_and_serves_the_fallback_reads(
    cluster: LocalStack, cluster_pg: sa.Engine
) -> None:
    settings = cluster.settings
    assert settings.read_database_url != settings.database_url, "the stack has no replica"
    product_id = f"REPLICA-{uuid.uuid4().hex[:8]}"
    replica_engine = sa.create_engine(settings.read_database_url, pool_pre_ping=True)
    with client(cluster) as api:
        api.put_product(product_id, name=product_id, price="3.00", stock=100)
        api.wait_product(product_id, lambda p: p["available"] == 100)
        order_ids = shipped_orders(api, product_id, 5)

        replica.wait_replayed(cluster_pg, replica_engine, timeout_s=30.0)
        assert statuses(replica_engine, order_ids) == dict.fromkeys(order_ids, "shipped")
        with replica_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar() is True

        # with the primary stopped and the read model's entry gone, the order is still
        # answered: from the replica
        keys = Keys(settings.topic_prefix)
        cache = redis.Redis.from_url(settings.redis_url)
        cache.delete(keys.order(order_ids[0]))
        cache.close()
        out = cluster.ctl("stop", "postgres", timeout=120.0)
        assert "stopped" in out, out
        try:
            shown = api.order(order_ids[0])
        finally:
            out = cluster.ctl("start", "postgres", timeout=120.0)
            assert "started" in out, out
        assert shown is not None and shown["status"] == "shipped", shown
    assert wait_for(cluster.probe("postgres"), 60.0)

    # the replica reconnects to the restarted primary within seconds; then the sink shows it
    # (the sink itself restarts once: its shard lock went with the primary's restart)
    url = f"http://127.0.0.1:{cluster.cfg.sink_metrics_port}/metrics"

    def scraped() -> bytes:
        try:
            return bytes(urllib.request.urlopen(url, timeout=5).read())
        except OSError:  # the restarting sink does not answer yet
            return b""

    assert wait_for(lambda: b"orderstream_pg_replica_lag_bytes{" in scraped(), 60.0, 1.0)
    replica_engine.dispose()


def test_the_sink_writes_on_while_the_replica_is_killed_and_it_catches_up(
    cluster: LocalStack, cluster_pg: sa.Engine
) -> None:
    settings = cluster.settings
    replica_engine = sa.create_engine(settings.read_database_url, pool_pre_ping=True)
    product_id = f"REPLICA-{uuid.uuid4().hex[:8]}"
    with client(cluster) as api:
        api.put_product(product_id, name=product_id, price="3.00", stock=100)
        api.wait_product(product_id, lambda p: p["available"] == 100)
        # kill -9 the replica, then keep it down while orders ship. The supervisor restarts
        # it first; it is stopped once that new process runs (a stop sent while the
        # supervisor is still spawning it would be lost before postgres handles signals).
        pid = cluster.running_pid(database.REPLICA)
        assert pid
        send(process_tree(pid), signal.SIGKILL)
        restarted = lambda: cluster.running_pid(database.REPLICA) not in (0, pid)  # noqa: E731
        assert wait_for(restarted, 60.0), "the supervisor did not restart the killed replica"
        out = cluster.ctl("stop", database.REPLICA, timeout=120.0)
        assert "stopped" in out, out
        try:
            order_ids = shipped_orders(api, product_id, 5)
            assert statuses(cluster_pg, order_ids) == dict.fromkeys(order_ids, "shipped")
        finally:
            out = cluster.ctl("start", database.REPLICA, timeout=120.0)
            assert "started" in out, out
    started = time.monotonic()
    assert wait_for(lambda: _answers(replica_engine), 60.0), "the replica did not come back"
    replica.wait_replayed(cluster_pg, replica_engine, timeout_s=60.0)
    print(f"replica caught up {time.monotonic() - started:.1f} s after its start")
    assert statuses(replica_engine, order_ids) == dict.fromkeys(order_ids, "shipped")
    found = [checks.check_reconcile(settings, [product_id], timeout_s=60.0)]
    checks.assert_all_ok(found, f"{len(order_ids)} orders")
    replica_engine.dispose()


def _answers(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
