"""Unit fixtures: the app wired with fakes (fakeredis with Lua, an in-memory publisher).

The app gets an asyncio fakeredis client; the harness a synchronous one on the same server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from falcon import testing
from ingress_fakes import ADMIN, STOREFRONT, FakeFallback, FakePublisher, Harness

from ingress.app import create_app
from orderstream.core.settings import Settings


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    def make(**overrides: Any) -> Harness:
        settings = Settings(**{"storefront_key": STOREFRONT, "admin_key": ADMIN, **overrides})
        server = fakeredis.FakeServer()
        redis = fakeredis.FakeRedis(server=server)  # the tests' view of the same data
        publisher = FakePublisher()
        fallback = FakeFallback()
        app = create_app(
            settings, publisher, fakeredis.FakeAsyncRedis(server=server), fallback=fallback
        )
        return Harness(testing.TestClient(app), redis, publisher, fallback, settings, server)

    return make


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
