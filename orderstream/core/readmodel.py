"""The Redis read model: order status and product availability (CQRS read side).

This module owns it: its keys, its scripts and the one way to write it. The ingress
writes through ``ReadModel`` (one script call per write); the stream processors and the
sink through a ``ReadModelWrites`` batch sent by a ``Sender``. The one script written
elsewhere, the ingress's admission (``ingress.admission``), runs ``SET_STATUS_LUA`` inside
it, so that taking an Idempotency-Key and showing the order ``accepted`` are one step.

Writers are the pipeline (ingress writes ``accepted``, the settler ``committed`` /
``rejected`` / ``cancelled``, the sink ``shipped`` / ``cancelled``, the stock agent
product availability), and ``orderstream readmodel rebuild`` (``orderstream.rebuild``:
products and final orders from the durable record, through ``SET_PRODUCT_LUA`` and
``REBUILD_STATUS_LUA``, never over a newer value). Readers are the ingress' GET endpoints.
Nothing here can change stock. Status writes only move forward (by rank), so late or
replayed writes are harmless, and every change is published on the order's channel for long-polling.

Keys (``ns`` is the namespace, empty in production, per-run in tests):
  {ns}os:order:{order_id}      hash: status, rank, reason, customer_id, items, total, updated_at
                               (expires 7 days after its last change, 1 day once final)
  {ns}os:order-channel:{order_id}  pub/sub channel: the new status
  {ns}os:product:{product_id}  hash: name, description, price, available, active,
                               limit_per_customer,
                               v_commands, v_requests (its version: SET_PRODUCT_LUA)
  {ns}os:product-ids           sorted set of product ids (all scores 0: read in id order,
                               a page at a time, by ZRANGE ... BYLEX)
  {ns}os:product-pending:{product_id}  set of admin command ids on their way to the stock agent
  {ns}os:idem:{request_key}    an Idempotency-Key's claim: its request's fingerprint, its order
                               id and, once answered, the answer (the ingress writes it)
  {ns}os:customer-orders:{customer_id}  sorted set: the customer's latest order ids, scored by
                               when they were placed (µs); at most CUSTOMER_RECENT_ORDERS,
                               written with the order's admission (the ingress)
  {ns}os:revoked-session:{session_id}  a customer session signed out: its access tokens are
                               refused until they would have expired (the ingress)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

from schemas.orders import TERMINAL_STATUSES

STATUS_RANK = {"accepted": 0, "committed": 1, "shipped": 2, "rejected": 2, "cancelled": 2}
ORDER_TTL_S = 7 * 24 * 3600  # an order on its way (accepted, committed)
# A final order (shipped, rejected, cancelled) is in PostgreSQL, which answers GETs once its
# hash is gone: kept a day, not a week. At 7 days a day of benchmarks left Redis 4.9 million
# keys (2.2 GB), whose AOF rewrites (a fork writing a 1.2 GB base) took a core for seconds.
FINAL_ORDER_TTL_S = 24 * 3600
# The customer's order index covers what PostgreSQL does not hold yet (orders on their way):
# their latest orders, bounded, kept as long as an order on its way.
CUSTOMER_RECENT_ORDERS = 100

# KEYS[1] order hash, KEYS[2] channel; ARGV[1] status, ARGV[2] rank, ARGV[3] ttl,
# ARGV[4..] field/value pairs. Returns 1 when the status moved forward, else 0.
SET_STATUS_LUA = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
local rank = tonumber(ARGV[2])
if rank <= cur then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""

# KEYS[1] order hash. Deletes it while it only says ``accepted`` (the ingress could not tell
# whether the order reached Kafka: until the pipeline decides it, nothing is known of it).
FORGET_ACCEPTED_LUA = """
if redis.call('HGET', KEYS[1], 'status') == 'accepted' then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] a product's pending set; ARGV[1] an admin command id, ARGV[2] ttl ms. While the
# set exists the sold-out gate lets the product's orders by.
HOLD_PENDING_LUA = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def _many(script: str, keys_per_call: int) -> str:
    """``script`` run once per (KEYS, ARGV) group of one call: KEYS hold ``keys_per_call``
    keys per group, ARGV each group's arg count and then its args (``batch_calls``).
    Returns the sum of the groups' results."""
    return f"""
local function one(KEYS, ARGV)
{script}
end
local a, total = 1, 0
for i = 1, #KEYS, {keys_per_call} do
  local n = tonumber(ARGV[a])
  total = total + one({{unpack(KEYS, i, i + {keys_per_call - 1})}}, {{unpack(ARGV, a + 1, a + n)}})
  a = a + 1 + n
end
return total
"""


# KEYS[1] product hash; ARGV[1], ARGV[2] the product's version: the last inventory.commands
# and orders.requests offsets applied to it (each only grows, and every change of the product
# raises one); ARGV[3..] field/value pairs. A write older than what the hash holds (both parts
# lower or equal, one lower: e.g. a worker that lost the partition flushing late) is dropped,
# so availability never goes back to a stale value, which the sold-out gate would trust.
# Returns 1 when written, else 0.
SET_PRODUCT_LUA = """
local stored = redis.call('HMGET', KEYS[1], 'v_commands', 'v_requests')
local c, r = tonumber(ARGV[1]), tonumber(ARGV[2])
local sc, sr = tonumber(stored[1]), tonumber(stored[2])
if sc and sr and sc >= c and sr >= r and (sc > c or sr > r) then return 0 end
redis.call('HSET', KEYS[1], 'v_commands', ARGV[1], 'v_requests', ARGV[2], unpack(ARGV, 3))
return 1
"""

# KEYS[1] order hash, KEYS[2] channel; ARGV as SET_STATUS_LUA's (``status_args``). The
# rebuild's write of an order from PostgreSQL (``orderstream.rebuild``), which holds final
# orders only, each written once and never changed. Like SET_STATUS_LUA it never moves a status
# back: a lower rank than the hash's is dropped. At the final rank the durable record is the
# truth, so a different final status (drift) is replaced and the fields are written again; no
# live writer has anything newer than a final order. Publishes only when the status changed.
# Returns 1 when the hash's status was written (missing, behind or wrong), else 0.
REBUILD_STATUS_LUA = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
local rank = tonumber(ARGV[2])
if rank < cur or (rank == cur and rank < FINAL_RANK) then return 0 end
local changed = redis.call('HGET', KEYS[1], 'status') ~= ARGV[1]
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if not changed then return 0 end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
""".replace("FINAL_RANK", str(max(STATUS_RANK.values())))

# The pipeline's writers send a batch's statuses and products as these, many per call: one
# command per chunk instead of one per order or product (docs/decisions/0006). A call blocks
# Redis while it runs, hence the chunks.
SET_STATUSES_LUA = _many(SET_STATUS_LUA, 2)
SET_PRODUCTS_LUA = _many(SET_PRODUCT_LUA, 1)
REBUILD_STATUSES_LUA = _many(REBUILD_STATUS_LUA, 2)
BATCH_CHUNK = 256


@dataclass(frozen=True)
class Keys:
    namespace: str = ""

    def order(self, order_id: str) -> str:
        return f"{self.namespace}os:order:{order_id}"

    def order_channel(self, order_id: str) -> str:
        return f"{self.namespace}os:order-channel:{order_id}"

    def product(self, product_id: str) -> str:
        return f"{self.namespace}os:product:{product_id}"

    def product_pending(self, product_id: str) -> str:
        """Set of admin command ids the ingress published and the stock agent has not applied
        yet (a TTL bounds it); while it exists the sold-out gate lets the product's orders by."""
        return f"{self.namespace}os:product-pending:{product_id}"

    def product_ids(self) -> str:
        return f"{self.namespace}os:product-ids"

    def customer_orders(self, customer_id: str) -> str:
        """The customer's latest order ids by placement time (µs): the order history's view
        of orders PostgreSQL does not hold yet."""
        return f"{self.namespace}os:customer-orders:{customer_id}"

    def revoked_session(self, session_id: str) -> str:
        """Set while the access tokens of a signed-out customer session may still be unexpired."""
        return f"{self.namespace}os:revoked-session:{session_id}"

    def idempotency(self, request_key: str) -> str:
        """An Idempotency-Key's claim (``ingress.idempotency``), by its request key
        (``schemas.orders.request_key_for``): JSON whose ``token`` is the key's order id."""
        return f"{self.namespace}os:idem:{request_key}"


def status_args(status: str, fields: Mapping[str, Any]) -> list[Any]:
    """ARGV for SET_STATUS_LUA. Non-string values are JSON-encoded."""
    ttl = FINAL_ORDER_TTL_S if status in TERMINAL_STATUSES else ORDER_TTL_S
    args: list[Any] = [status, STATUS_RANK[status], ttl]
    for key, value in fields.items():
        if value is None:
            continue
        args += [key, value if isinstance(value, str) else json.dumps(value, default=str)]
    return args


def batch_calls(
    calls: Iterable[tuple[Sequence[str], Sequence[Any]]], chunk: int = BATCH_CHUNK
) -> Iterator[tuple[list[str], list[Any]]]:
    """(KEYS, ARGV) of ``_many`` scripts, ``chunk`` calls each, from each call's (keys, args)."""
    redis_keys: list[str] = []
    args: list[Any] = []
    count = 0
    for call_keys, call_args in calls:
        redis_keys += call_keys
        args.append(len(call_args))
        args += call_args
        count += 1
        if count == chunk:
            yield redis_keys, args
            redis_keys, args, count = [], [], 0
    if count:
        yield redis_keys, args


def status_calls(
    keys: Keys,
    updates: Iterable[tuple[str, str, Mapping[str, Any]]],
    chunk: int = BATCH_CHUNK,
) -> Iterator[tuple[list[str], list[Any]]]:
    """SET_STATUSES_LUA's (KEYS, ARGV) per chunk from (order_id, status, fields)."""
    return batch_calls(
        (
            ((keys.order(o), keys.order_channel(o)), status_args(status, fields))
            for o, status, fields in updates
        ),
        chunk,
    )


def decode_order(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Any] | None:
    """The order hash as a dict (JSON fields decoded), or None when absent."""
    if not raw:
        return None
    data = {_s(k): _s(v) for k, v in raw.items()}
    if "items" in data:
        data["items"] = json.loads(data["items"])
    return data


def product_fields(
    *,
    name: str,
    price: str,
    available: int,
    active: bool,
    limit_per_customer: int | None,
    description: str | None = None,
) -> dict[str, str]:
    return {
        "name": name,
        "price": price,
        "description": description or "",
        "available": str(available),
        "active": "1" if active else "0",
        "limit_per_customer": "" if limit_per_customer is None else str(limit_per_customer),
    }


def decode_product(
    product_id: str, raw: Mapping[bytes | str, bytes | str]
) -> dict[str, Any] | None:
    if not raw:
        return None
    data = {_s(k): _s(v) for k, v in raw.items()}
    limit = data.get("limit_per_customer") or None
    return {
        "product_id": product_id,
        "name": data.get("name", ""),
        "description": data.get("description") or None,
        "price": data.get("price", "0"),
        "available": int(data.get("available", "0")),
        "active": data.get("active", "1") == "1",
        "limit_per_customer": int(limit) if limit else None,
    }


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Call(NamedTuple):
    """One write: a script (``script`` set) or a plain command (``args`` starts with its name)."""

    script: str | None
    keys: list[str]
    args: list[Any]

    def eval_args(self) -> tuple[Any, ...]:
        """The arguments of ``redis.eval`` for a script call."""
        assert self.script is not None
        return (self.script, len(self.keys), *self.keys, *self.args)


class ReadModel:
    """The writer API for one write at a time (the ingress: a request's own writes)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def set_status(self, order_id: str, status: str, fields: Mapping[str, Any]) -> Call:
        """Move the order's status forward (never back) and publish the change."""
        order_keys = [self.keys.order(order_id), self.keys.order_channel(order_id)]
        return Call(SET_STATUS_LUA, order_keys, status_args(status, fields))

    def forget_accepted(self, order_id: str) -> Call:
        """Delete the order's hash while it only says ``accepted``."""
        return Call(FORGET_ACCEPTED_LUA, [self.keys.order(order_id)], [])

    def hold_pending(self, product_id: str, command_id: str, ttl_ms: int) -> Call:
        """Mark an admin command on its way to the product's stock agent."""
        return Call(HOLD_PENDING_LUA, [self.keys.product_pending(product_id)], [command_id, ttl_ms])


class ReadModelWrites:
    """The pipeline's writes of one flush: statuses, products and applied admin commands.

    ``calls`` yields them in the order they must reach Redis: products (and their ids),
    then the applied commands (the gate trusts a product's availability once its pending
    set is empty), then statuses; many products or statuses per script call.
    """

    def __init__(self, keys: Keys, chunk: int = BATCH_CHUNK) -> None:
        self.keys = keys
        self.chunk = chunk
        self.statuses: list[tuple[str, str, Mapping[str, Any]]] = []
        self.products: dict[str, tuple[tuple[int, int], Mapping[str, str]]] = {}
        self.applied: dict[str, set[str]] = {}

    def status(self, order_id: str, status: str, fields: Mapping[str, Any]) -> None:
        self.statuses.append((order_id, status, fields))

    def product(self, product_id: str, version: tuple[int, int], fields: Mapping[str, str]) -> None:
        """``version``: the last (inventory.commands, orders.requests) offsets applied to it."""
        self.products[product_id] = (version, fields)

    def command_applied(self, product_id: str, command_ids: Iterable[str]) -> None:
        self.applied.setdefault(product_id, set()).update(command_ids)

    def __len__(self) -> int:
        return len(self.statuses) + len(self.products) + len(self.applied)

    def calls(self) -> Iterator[Call]:
        if self.products:
            ids = [arg for product_id in self.products for arg in (0, product_id)]
            yield Call(None, [], ["ZADD", self.keys.product_ids(), *ids])
        products = (
            ((self.keys.product(product_id),), [*version, *chain(*fields.items())])
            for product_id, (version, fields) in self.products.items()
        )
        for redis_keys, args in batch_calls(products, self.chunk):
            yield Call(SET_PRODUCTS_LUA, redis_keys, args)
        for product_id, command_ids in self.applied.items():
            yield Call(None, [], ["SREM", self.keys.product_pending(product_id), *command_ids])
        for redis_keys, args in status_calls(self.keys, self.statuses, self.chunk):
            yield Call(SET_STATUSES_LUA, redis_keys, args)


class Sender:
    """Sends ``ReadModelWrites`` over one redis-py client (``send``) or ``redis.asyncio``
    client (``send_async``), in one pipeline per batch. Scripts go as EVALSHA; the pipeline
    loads any Redis lacks."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts: dict[str, Any] = {}

    def _script(self, script: str) -> Any:
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = self._client.register_script(script)
        return registered

    def send(self, writes: ReadModelWrites) -> int:
        """Returns the calls sent."""
        calls = list(writes.calls())
        if not calls:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            if call.script is None:
                pipe.execute_command(*call.args)
            else:
                self._script(call.script)(keys=call.keys, args=call.args, client=pipe)
        pipe.execute()
        return len(calls)

    async def send_async(self, writes: ReadModelWrites) -> int:
        calls = list(writes.calls())
        if not calls:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                if call.script is None:
                    pipe.execute_command(*call.args)
                else:
                    script = self._script(call.script)
                    await script(keys=call.keys, args=call.args, client=pipe)
            await pipe.execute()
        return len(calls)
