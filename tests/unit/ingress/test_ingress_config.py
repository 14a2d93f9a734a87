"""ingress.config: the ingress' knobs are read once from the environment, with the names and
defaults deployments set, and choose the Redis client ``get_app`` wires."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingress.app import connect_redis
from ingress.config import IngressConfig
from ingress.redisbatch import BatchedRedis
from ingress.respwire import RespWire
from orderstream.core.settings import Settings


def test_defaults_when_nothing_is_set() -> None:
    config = IngressConfig.from_env({})
    assert (config.redis_batch, config.redis_client, config.kafka_linger_ms) == (True, "wire", 2)
    assert (config.workers, config.asgi_loop, config.prometheus_multiproc_dir) == (
        2,
        "uvloop",
        None,
    )


def test_the_environment_variables() -> None:
    config = IngressConfig.from_env(
        {
            "INGRESS_REDIS_BATCH": "0",
            "INGRESS_REDIS_WIRE": "0",
            "INGRESS_KAFKA_LINGER_MS": "7",
            "INGRESS_WORKERS": "4",
            "INGRESS_ASGI_LOOP": "asyncio",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
        }
    )
    assert (config.redis_batch, config.redis_client, config.kafka_linger_ms) == (
        False,
        "pipeline",
        7,
    )
    assert (config.workers, config.asgi_loop, config.prometheus_multiproc_dir) == (
        4,
        "asyncio",
        "/tmp/metrics",
    )


@pytest.mark.parametrize(
    ("url", "overrides", "expected"),
    [
        ("redis://127.0.0.1:1/0", {}, "wire"),
        ("redis://127.0.0.1:1/0", {"redis_client": "pipeline"}, "pipeline"),
        ("unix:///tmp/redis.sock", {}, "pipeline"),  # the wire speaks TCP only
        ("redis://127.0.0.1:1/0", {"redis_batch": False}, "unbatched"),
    ],
)
def test_the_config_chooses_the_redis_client(
    url: str, overrides: dict[str, Any], expected: str
) -> None:
    async def main() -> str:
        config = IngressConfig.from_settings(Settings(redis_url=url), **overrides)
        client = connect_redis(config)  # nothing is connected until a command is sent
        try:
            if not isinstance(client, BatchedRedis):
                return "unbatched"
            return "wire" if isinstance(client.wire, RespWire) else "pipeline"
        finally:
            await client.aclose()

    assert asyncio.run(main()) == expected
