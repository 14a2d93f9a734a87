"""Redis stock pre-deduction for baseline_lua: the classic Lua check-and-DECRBY, and its rollback.

Keys (``P`` is the baseline's prefix): ``P stock:{product_id}`` units available;
``P deductions`` hash order_id -> ``pid:q,pid:q`` (what to give back); ``P queue`` the
order queue (a Redis list); ``P done:{order_id}`` a wake-up for long-polling GETs;
``P rejected:{order_id}`` the reason for orders rejected at the Redis step.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

# KEYS[1] deductions hash, KEYS[2..] stock keys; ARGV[1] order_id, ARGV[2..#KEYS] quantities,
# ARGV[#KEYS + 1] the deduction record. Returns 1 deducted, 0 out of stock, -1 unknown product.
PREDEDUCT_LUA = """
for i = 2, #KEYS do
  local s = redis.call('GET', KEYS[i])
  if not s then return -1 end
  if tonumber(s) < tonumber(ARGV[i]) then return 0 end
end
for i = 2, #KEYS do redis.call('DECRBY', KEYS[i], ARGV[i]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[#KEYS + 1])
return 1
"""

# KEYS[1] deductions hash; ARGV[1] order_id, ARGV[2] stock key prefix. Gives the units back once.
RELEASE_LUA = """
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
for pid, q in string.gmatch(rec, '([^:,]+):(%d+)') do redis.call('INCRBY', ARGV[2] .. pid, q) end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

DONE_TTL_S = 120


class RedisStock:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._prededuct = client.register_script(PREDEDUCT_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def stock_key(self, product_id: str) -> str:
        return f"{self.prefix}stock:{product_id}"

    @property
    def deductions_key(self) -> str:
        return f"{self.prefix}deductions"

    @property
    def queue_key(self) -> str:
        return f"{self.prefix}queue"

    def done_key(self, order_id: str) -> str:
        return f"{self.prefix}done:{order_id}"

    def rejected_key(self, order_id: str) -> str:
        return f"{self.prefix}rejected:{order_id}"

    def set_stock(self, product_id: str, units: int) -> None:
        self.client.set(self.stock_key(product_id), units)

    def prededuct(self, order_id: str, units: Mapping[str, int]) -> int:
        record = ",".join(f"{pid}:{q}" for pid, q in units.items())
        keys = [self.deductions_key, *(self.stock_key(pid) for pid in units)]
        return int(self._prededuct(keys=keys, args=[order_id, *units.values(), record]))

    def release(self, order_id: str) -> bool:
        return bool(
            self._release(keys=[self.deductions_key], args=[order_id, f"{self.prefix}stock:"])
        )

    def settle(self, order_id: str) -> None:
        """The order is committed in SQL: its Redis units stay deducted."""
        self.client.hdel(self.deductions_key, order_id)

    def notify_done(self, order_id: str) -> None:
        key = self.done_key(order_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, "1")
            pipe.expire(key, DONE_TTL_S)
            pipe.execute()
