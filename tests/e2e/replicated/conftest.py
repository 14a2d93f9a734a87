"""The replicated stack: three Kafka nodes (RF 3, min.insync.replicas 2), a PostgreSQL
replica and a standby per stock table partition, under supervisord in ``.local/replicated``
beside the shared stack (``orderstream.stack.testing.replicated_config``). Brought up here;
stopped at the end of the session when it was not running before, its data kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orderstream.stack import testing
from tests.chaos.stackctl import LocalStack


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalStack]:
    cfg, cleanup = testing.acquire_replicated()
    try:
        yield LocalStack(local=cfg.local)
    finally:
        cleanup()


@pytest.fixture(scope="session")
def cluster_pg(cluster: LocalStack) -> Iterator[sa.Engine]:
    engine = sa.create_engine(cluster.settings.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()
