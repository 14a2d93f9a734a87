"""ingress.redisconn on the real Redis: a connection the server closed is replaced and the
command goes through (one retry on ConnectionError; redis-py's default is none)."""

from __future__ import annotations

import asyncio
from typing import Any

from ingress.redisconn import connect


def test_a_connection_closed_by_the_server_is_replaced(stack: Any, redis_client: Any) -> None:
    async def main() -> None:
        client = connect(stack.settings.redis_url, max_connections=1)
        try:
            await client.client_setname("ingress-redisconn-closed")
            for info in redis_client.client_list():
                if info.get("name") == "ingress-redisconn-closed":
                    redis_client.client_kill_filter(_id=info["id"])
            assert await client.ping() is True
            assert await client.client_getname() is None  # a new connection
        finally:
            await client.aclose()

    asyncio.run(main())
