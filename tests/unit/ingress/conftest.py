"""Unit fixtures: the app wired with fakes (fakeredis with Lua, an in-memory publisher).

``make_harness()`` gives the app an asyncio fakeredis client; ``make_harness(wire=True)``
the client production runs (``ingress.app.connect_redis``: ``BatchedRedis`` over
``RespWire``, long-polls on ``RespSubscriber``) against fakeredis' TCP server on a loopback
socket; ``h`` runs each test both ways. The harness has a synchronous client on the same
data either way."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from falcon import testing
from falcon.util.sync import async_to_sync
from ingress_fakes import ADMIN, STOREFRONT, FakeFallback, FakePublisher, Harness
from resp_servers import fake_redis_server

from ingress.app import connect_redis, create_app
from ingress.config import IngressConfig
from orderstream.core.settings import Settings


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    with contextlib.ExitStack() as cleanup:

        def make(*, wire: bool = False, **overrides: Any) -> Harness:
            settings = Settings(**{"storefront_key": STOREFRONT, "admin_key": ADMIN, **overrides})
            publisher = FakePublisher()
            fallback = FakeFallback()
            client: Any
            if wire:
                tcp = cleanup.enter_context(fake_redis_server())
                settings = dataclasses.replace(settings, redis_url=tcp.url)
                client = connect_redis(IngressConfig.from_settings(settings))
                # on the loop falcon's TestClient runs the app on, before the server stops
                cleanup.callback(async_to_sync, client.aclose)
                server, redis = tcp.fake_server, tcp.redis
            else:
                server = fakeredis.FakeServer()
                client = fakeredis.FakeAsyncRedis(server=server)
                redis = fakeredis.FakeRedis(server=server)  # the tests' view of the same data
            app = create_app(settings, publisher, client, fallback=fallback)
            return Harness(testing.TestClient(app), redis, publisher, fallback, settings, server)

        yield make


@pytest.fixture(params=["wire", "fakeredis"])
def h(request: pytest.FixtureRequest, make_harness: Callable[..., Harness]) -> Harness:
    """The app with default settings, on each Redis path (see the module docstring)."""
    return make_harness(wire=request.param == "wire")
