"""ingress.redisconn on the real Redis: a connection the server closed is replaced, whether
it was idle (probed on checkout, as redis-py does) or busy (not probed: one retry)."""

from __future__ import annotations

from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from ingress.redisconn import WarmConnectionPool


def _kill_own_connections(admin: Any, client: Any) -> None:
    name = client.client_getname()
    for info in admin.client_list():
        if info.get("name") == name:
            admin.client_kill_filter(_id=info["id"])


def test_a_busy_connection_closed_by_the_server_is_retried(
    ingress_redis: Any, redis_client: Any, monkeypatch: Any
) -> None:
    # every checkout is "busy" however slow the machine: no probe, so only the retry can save it
    monkeypatch.setattr(WarmConnectionPool, "probe_after_s", 3600.0)
    ingress_redis.client_setname("ingress-redisconn-busy")
    _kill_own_connections(redis_client, ingress_redis)
    assert ingress_redis.ping() is True
    assert ingress_redis.client_getname() is None  # a new connection (the name was on the old one)


def test_an_idle_connection_closed_by_the_server_is_probed_and_replaced(
    ingress_redis: Any, redis_client: Any, monkeypatch: Any
) -> None:
    ingress_redis.client_setname("ingress-redisconn-idle")
    _kill_own_connections(redis_client, ingress_redis)
    monkeypatch.setattr(WarmConnectionPool, "probe_after_s", 0.0)  # every checkout is "idle"
    (connection,) = ingress_redis.connection_pool._available_connections
    connection.retry = Retry(NoBackoff(), 0)  # no retry: only the probe can save the command
    assert ingress_redis.ping() is True
    assert ingress_redis.client_getname() is None


def test_a_pool_connection_is_reused_while_warm(ingress_redis: Any) -> None:
    for _ in range(20):
        ingress_redis.get("ingress-redisconn-none")
    assert len(ingress_redis.connection_pool._available_connections) == 1
