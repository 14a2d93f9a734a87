"""Unit fixtures: the app wired with fakes (fakeredis with Lua, an in-memory publisher)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from falcon import testing
from ingress_fakes import ADMIN, STOREFRONT, FakeFallback, FakePublisher, Harness

from ingress.app import create_app
from orderstream.settings import Settings


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    def make(**overrides: Any) -> Harness:
        settings = Settings(**{"storefront_key": STOREFRONT, "admin_key": ADMIN, **overrides})
        server = fakeredis.FakeServer()
        redis = fakeredis.FakeRedis(server=server)
        publisher = FakePublisher()
        fallback = FakeFallback()
        app = create_app(settings, publisher, redis, fallback=fallback)
        return Harness(testing.TestClient(app), redis, publisher, fallback, settings, server)

    return make


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
