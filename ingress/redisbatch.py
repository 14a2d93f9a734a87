"""Group commit for the ingress' hot Redis commands: concurrent requests share round trips.

Every order costs two Redis round trips (claim + ``accepted``, then the stored response)
and every order GET one (HGETALL). ``BatchedRedis`` sends the commands that requests issue
meanwhile as one pipeline from one sender task: each request still awaits its own reply
before it goes on, so nothing is answered earlier than before; only the wire work (a
connection checkout, a write, a read, redis-py's per-command wrapper) is shared. While a
pipeline is out, the next commands gather for the one after it.

Only ``eval``, ``set`` and ``hgetall`` are batched; anything else goes to the wrapped
client directly. A per-command error (e.g. a Lua error) is raised to its caller only; a
connection error fails the whole batch, and every caller sees it (redis-py retries the
pipeline once on ConnectionError, as it does single commands: see ``ingress.redisconn``).

With a ``wire`` (``ingress.respwire.RespWire``, what the ingress runs) a batch goes out
through that one hiredis connection instead of a redis-py ``Pipeline``, and the replies are
shaped here as redis-py shapes them (``SET`` -> True or None, ``HGETALL`` -> dict). Without
one (``IngressConfig.redis_client = "pipeline"``, a non-redis:// URL, a fakeredis client),
through the wrapped client's pipelines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)


class BatchedRedis:
    """A redis.asyncio client whose ``eval``/``set``/``hgetall`` go out in shared pipelines."""

    def __init__(self, redis: Any, *, max_batch: int = 256, wire: Any = None) -> None:
        self._redis = redis
        self._wire = wire
        self._max_batch = max_batch
        self._queue: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None

    @property
    def wire(self) -> Any:
        """The hiredis connection batches go out on (None: redis-py pipelines)."""
        return self._wire

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def eval(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("eval", args, kwargs)

    async def set(self, name: Any, value: Any, *, ex: int | None = None, nx: bool = False) -> Any:
        kwargs: dict[str, Any] = {}
        if ex is not None:
            kwargs["ex"] = ex
        if nx:
            kwargs["nx"] = True
        return await self._call("set", (name, value), kwargs)

    async def hgetall(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("hgetall", args, kwargs)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._sender is None or self._sender.done():
            self._wake = asyncio.Event()
            self._sender = asyncio.get_running_loop().create_task(self._run())
        reply = asyncio.get_running_loop().create_future()
        self._queue.append((name, args, kwargs, reply))
        assert self._wake is not None
        self._wake.set()
        return reply

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    await self._send(batch)
        finally:
            logger.warning("redis batch sender stopped; the next command starts another")

    async def _send(
        self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            if self._wire is not None:
                results = await self._wire_execute(batch)
            else:
                pipe = self._redis.pipeline(transaction=False)
                for name, args, kwargs, _ in batch:
                    getattr(pipe, name)(*args, **kwargs)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the callers must hear about it, whatever it is
            for *_, reply in batch:
                if not reply.done():
                    reply.set_exception(
                        exc
                        if isinstance(exc, Exception)
                        else ConnectionError("redis batch stopped")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, reply), result in zip(batch, results, strict=True):
            if reply.done():  # its caller gave up (cancelled)
                continue
            if isinstance(result, Exception):
                reply.set_exception(result)
            else:
                reply.set_result(result)

    async def _wire_execute(
        self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        commands = [_COMMANDS[name](*args, **kwargs) for name, args, kwargs, _ in batch]
        replies = await self._wire.execute(commands)
        return [
            reply if isinstance(reply, Exception) else _SHAPES[name](reply)
            for (name, *_), reply in zip(batch, replies, strict=True)
        ]

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self._wire is not None:
            await self._wire.aclose()
        await self._redis.aclose()


def _set_command(name: Any, value: Any, ex: int | None = None, nx: bool = False) -> tuple[Any, ...]:
    return ("SET", name, value, *(("EX", ex) if ex is not None else ()), *(("NX",) if nx else ()))


def _pairs(reply: list[Any]) -> dict[Any, Any]:
    it = iter(reply)
    return dict(zip(it, it, strict=True))


# the wire's commands and reply shapes, as redis-py's eval / set / hgetall give them
_COMMANDS: dict[str, Any] = {
    "eval": lambda *args: ("EVAL", *args),
    "set": _set_command,
    "hgetall": lambda name: ("HGETALL", name),
}
_SHAPES: dict[str, Any] = {
    "eval": lambda reply: reply,
    "set": lambda reply: reply == b"OK" or None,
    "hgetall": _pairs,
}
