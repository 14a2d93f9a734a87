"""Redis smoke: a value set and read back."""

from __future__ import annotations

import redis


def test_value_round_trip(redis_client: redis.Redis, namespace: str) -> None:
    key = f"{namespace}smoke"
    redis_client.set(key, "42", ex=60)
    assert redis_client.get(key) == b"42"
