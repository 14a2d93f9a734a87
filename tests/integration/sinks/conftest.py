"""Fixtures of the sink's integration tests: per test, a migrated scratch database
(``orderstream_test_<hex>``, dropped after) and settings with the test's own topic prefix
(topics created, then deleted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sink_helpers import Producer, create_topics, delete_topics, scratch_database, settings_for_test

from orderstream.core.settings import Settings
from orderstream.stack.testing import StackHandle
from sinks.migrate import upgrade


@pytest.fixture
def sink_database(stack: StackHandle) -> Iterator[str]:
    with scratch_database(stack.settings.database_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def sink_engine(sink_database: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(sink_database, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def sink_settings(stack: StackHandle, namespace: str, sink_database: str) -> Iterator[Settings]:
    settings = settings_for_test(
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
