"""The replicated stack: three Kafka nodes (RF 3, min.insync.replicas 2), a standby per
stock table partition, under supervisord in ``.local/replicated`` beside the shared stack
(``orderstream.stack.testing.replicated_config``). Started here when it does not answer,
stopped at the end of the session; its data is kept for the next run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orderstream.stack import testing
from tests.chaos.stackctl import LocalStack

REPLICATED = Path(__file__).resolve().parent


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
