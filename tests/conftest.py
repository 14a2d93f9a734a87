"""Root test configuration: tier markers by directory, and the fixtures every tier shares.

``stack`` (session) is the running local stack when ``.local/stack.env`` answers; else a
testcontainers stack when a Docker engine answers; else the local stack started here (the
same code as ``make up``) and stopped at the end. Everything a test creates is named under
its own ``namespace``, so tests never see each other's topics, groups or keys. A unit test
may not ask for ``stack``, directly or through another fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from kafka.admin import KafkaAdminClient, NewTopic

from orderstream.stack import testing
from orderstream.stack.testing import StackHandle

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")
# last in a session, in this order: the replicated stack's fault tests (they start a second
# stack beside the shared one), then the chaos run (its faults then disturb no other test,
# and a stack it leaves broken fails only the run itself)
LAST = (TESTS / "e2e" / "replicated", TESTS / "chaos")


def rank(item: pytest.Item) -> int:
    parents = Path(str(item.path)).resolve().parents
    return next((n + 1 for n, directory in enumerate(LAST) if directory in parents), 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=rank)
    for item in items:
        parents = Path(str(item.path)).resolve().parents
        for tier in TIERS:
            if TESTS / tier in parents:
                item.add_marker(getattr(pytest.mark, tier))
        # the unit tier runs without Kafka, PostgreSQL or Redis installed (make test-unit):
        # every fixture that reaches a real service goes through `stack`
        if item.get_closest_marker("unit") and "stack" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: a unit test uses the stack fixture")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    handle, cleanup = testing.acquire()
    try:
        yield handle
    finally:
        cleanup()


@pytest.fixture
def namespace() -> str:
    """A short unique prefix (``t3f9a1.``) for this test's topics, groups and keys."""
    return f"t{uuid.uuid4().hex[:5]}."


@pytest.fixture
def topic_factory(stack: StackHandle, namespace: str) -> Iterator[Callable[..., str]]:
    """``topic_factory(name="topic", partitions=1, **config) -> str``: new topic, deleted after."""
    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    created: list[str] = []

    def make(name: str = "topic", partitions: int = 1, **config: str) -> str:
        topic = f"{namespace}{name}-{uuid.uuid4().hex[:4]}"
        admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=dict(config))],
            timeout_ms=30000,
            wait_for_metadata=True,
        )
        created.append(topic)
        return topic

    yield make
    try:
        if created:
            admin.delete_topics(created, timeout_ms=30000)
    finally:
        admin.close()


@pytest.fixture
def group_id(namespace: str) -> Callable[[], str]:
    """``group_id() -> str``: a fresh consumer group id under the namespace."""
    return lambda: f"{namespace}group-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def redis_client(stack: StackHandle, namespace: str) -> Iterator[redis.Redis]:
    """A Redis client (bytes responses); keys under ``namespace`` are deleted after the test."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    yield client
    try:
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def db_engine(stack: StackHandle) -> Iterator[sa.Engine]:
    engine = sa.create_engine(stack.settings.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()
