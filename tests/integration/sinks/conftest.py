"""Fixtures of the sink's integration tests: a migrated scratch database per session and
a settings object per test (own topic prefix, topics created, then deleted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sink_helpers import Producer, create_topics, delete_topics, scratch_database, test_settings

from orderstream.settings import Settings
from sinks.migrate import upgrade


@pytest.fixture(scope="session")
def sink_database(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with scratch_database(stack.settings.database_url) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sink_engine(sink_database: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(sink_database, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def sink_settings(stack, namespace: str, sink_database: str) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    settings = test_settings(
        stack.settings, namespace, sink_database, sink_batch_size=200, sink_batch_timeout_s=0.05
    )
    names = create_topics(settings)
    yield settings
    delete_topics(settings, names)


@pytest.fixture
def producer(sink_settings: Settings) -> Iterator[Producer]:
    p = Producer(sink_settings)
    yield p
    p.close()
