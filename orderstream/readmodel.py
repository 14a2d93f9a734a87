"""The Redis read model: order status and product availability (CQRS read side).

Writers are the pipeline (ingress writes ``accepted``, the settler ``committed`` /
``rejected`` / ``cancelled``, the sink ``shipped`` / ``cancelled``, the stock agent
product availability). Readers are the ingress' GET endpoints. Nothing here can change
stock. Status writes only move forward (by rank), so late or replayed writes are
harmless, and every change is published on the order's channel for long-polling.

Keys (``ns`` is the namespace, empty in production, per-run in tests):
  {ns}os:order:{order_id}      hash: status, rank, reason, customer_id, items, total, updated_at
                               (expires 7 days after its last change, 1 day once final)
  {ns}os:order-channel:{order_id}  pub/sub channel: the new status
  {ns}os:product:{product_id}  hash: name, price, available, active, limit_per_customer,
                               v_commands, v_requests (its version: SET_PRODUCT_LUA)
  {ns}os:product-ids           sorted set of product ids (all scores 0: read in id order,
                               a page at a time, by ZRANGE ... BYLEX)
  {ns}os:product-pending:{product_id}  set of admin command ids on their way to the stock agent
  {ns}os:idem:{request_key}    an Idempotency-Key's claim: its request's fingerprint, its order
                               id and, once answered, the answer (the ingress writes it)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.orders import TERMINAL_STATUSES

STATUS_RANK = {"accepted": 0, "committed": 1, "shipped": 2, "rejected": 2, "cancelled": 2}
ORDER_TTL_S = 7 * 24 * 3600  # an order on its way (accepted, committed)
# A final order (shipped, rejected, cancelled) is in PostgreSQL, which answers GETs once its
# hash is gone: kept a day, not a week. At 7 days a day of benchmarks left Redis 4.9 million
# keys (2.2 GB), whose AOF rewrites (a fork writing a 1.2 GB base) took a core for seconds.
FINAL_ORDER_TTL_S = 24 * 3600

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

# The pipeline's writers send a batch's statuses and products as these, many per call: one
# command per chunk instead of one per order or product (redis-py packs and parses one
# command, Redis runs one; ~8% less worker CPU per line, bench.components.streams hot).
# A call blocks Redis while it runs, hence the chunks.
SET_STATUSES_LUA = _many(SET_STATUS_LUA, 2)
SET_PRODUCTS_LUA = _many(SET_PRODUCT_LUA, 1)
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
    *, name: str, price: str, available: int, active: bool, limit_per_customer: int | None
) -> dict[str, str]:
    return {
        "name": name,
        "price": price,
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
        "price": data.get("price", "0"),
        "available": int(data.get("available", "0")),
        "active": data.get("active", "1") == "1",
        "limit_per_customer": int(limit) if limit else None,
    }


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
