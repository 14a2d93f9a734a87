"""Kafka (KRaft, the official apache/kafka image), PostgreSQL and Redis as testcontainers.

Used by the tests only when no local stack answers and a Docker engine does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import ExitStack

from orderstream.stack.runner import External

KAFKA_IMAGE = "apache/kafka:4.3.1"  # same version as deploy/kafka/pom.xml
POSTGRES_IMAGE = "postgres:15"
REDIS_IMAGE = "redis:7"


def engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start() -> tuple[External, Callable[[], None]]:
    """Start the three containers; returns where they are and a function that stops them."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    stack = ExitStack()
    try:
        # A fixed host port, so the advertised listener is known before the broker starts.
        port = _free_port()
        kafka = (
            DockerContainer(KAFKA_IMAGE)
            .with_bind_ports(9092, port)
            .with_env("KAFKA_NODE_ID", "1")
            .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
            .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
            .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
            .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
            .with_env(
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
            )
            .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        )
        stack.enter_context(kafka)
        pg = PostgresContainer(
            POSTGRES_IMAGE,
            username="orderstream",
            password="orderstream",
            dbname="orderstream",
            driver="psycopg",
        )
        stack.enter_context(pg)
        rd = RedisContainer(REDIS_IMAGE)
        stack.enter_context(rd)
        external = External(
            kafka_bootstrap=f"127.0.0.1:{port}",
            database_url=pg.get_connection_url(),
            redis_url=f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0",
        )
    except BaseException:
        stack.close()
        raise
    return external, stack.close
