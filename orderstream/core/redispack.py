"""redis.asyncio connections that pack commands in C (hiredis), as redis-py's sync client does.

redis-py's asyncio ``Connection.pack_command`` builds every command in Python, one bytes
join per argument, even with hiredis installed; its sync ``Connection`` packs with
``HiredisRespSerializer`` (``hiredis.pack_command``). The pipeline's read-model writes are
long commands (``orderstream.core.readmodel.batch_calls``: thousands of arguments), where
the Python packer shows in a worker's profile (docs/decisions/0008). This connection class
uses redis-py's own hiredis serializer for asyncio clients; without hiredis, or for
``unix://`` and ``rediss://`` URLs, redis-py's defaults stay.
"""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE


class HiredisPackingConnection(aioredis.Connection):
    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._packer.pack(*args)


def connection_options(url: str) -> dict[str, Any]:
    """``connection_class`` for a pool of ``url`` (empty when redis-py's default is kept)."""
    if HIREDIS_AVAILABLE and url.startswith("redis://"):
        return {"connection_class": HiredisPackingConnection}
    return {}
