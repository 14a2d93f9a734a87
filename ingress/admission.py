"""Admission: whether the ingress takes an order at all, decided by one Redis script.

``ADMIT_LUA`` runs atomically, in the one round trip an order costs before publishing:

1. **The Idempotency-Key claim.** A key held by another request returns its stored value
   and writes nothing (``ingress.idempotency`` turns it into a replay, 409 or 422).
2. **The sold-out gate.** When the read model shows a line's product discontinued, with a
   per-customer limit below the line's quantity (no customer may ever hold that many), or
   with fewer units available than the line asks, the order is refused: nothing is written,
   nothing is published, and the client gets 409 with the line and the reason
   (``discontinued`` / ``limit_exceeded`` / ``out_of_stock``, the reasons of the order
   lifecycle, in the stock agent's order). A limit the customer reaches only with what
   they already hold is the stock agent's to judge: the read model has no holdings. In a flash
   sale most buyers arrive after the stock is gone; they get their answer here, at the
   cost of one Redis script, instead of a trip through Kafka, a stock agent, the settler
   and a long-poll. The gate can only refuse, never accept: every accepted order is still
   decided by the stock agent in its product's partition, so it cannot oversell.
   It fails open: a product the read model does not know, or a product with an admin
   command on its way, passes to the stock agent. The admin endpoints add the command's id
   to the product's pending set (``Keys.product_pending``) before they publish it, and the
   stock agent removes it in the read-model write that shows the command's effect, so a
   restock is never refused at the door before the read model shows it. The set expires
   after ``sold_out_gate_pause_s`` in case that removal is lost (a worker crash). The
   price of the gate is the read model's lag: units released a few milliseconds ago (a
   cancelled or expired order) may not be visible yet. ``ORDERSTREAM_SOLD_OUT_GATE=false``
   turns the gate off.
3. **The ``accepted`` status** (``orderstream.core.readmodel.SET_STATUS_LUA``), so the order is
   readable at once, and the order's place in its customer's recent orders
   (``Keys.customer_orders``, bounded), so the order history shows it before PostgreSQL does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ingress.config import IngressConfig
from ingress.errors import NotAvailable
from ingress.validation import OrderRequest
from orderstream.core.readmodel import (
    CUSTOMER_RECENT_ORDERS,
    ORDER_TTL_S,
    SET_STATUS_LUA,
    ReadModel,
)

# KEYS[1] order hash, KEYS[2] order channel, KEYS[3] the Idempotency-Key's claim,
# KEYS[4..3+n] the lines' product hashes, KEYS[4+n..3+2n] their
# pending-command keys, KEYS[4+2n] the customer's recent orders. ARGV[1] claim value, ARGV[2]
# claim ttl ms, ARGV[3] n (0: no gate), ARGV[4..3+n] the lines' quantities, ARGV[4+n] the
# placement time (µs), ARGV[5+n] the order id, ARGV[6+n] how many recent orders are kept,
# ARGV[7+n] their ttl s, ARGV[8+n..] orderstream.core.readmodel.status_args.
# Returns nil (admitted: claimed and accepted), the stored claim value (another request
# holds the key; nothing written) or {line_no, reason, available, limit (-1: none)} (refused;
# nothing written). The reasons are checked in the stock agent's order
# (``streams.decisions``): discontinued, then limit_exceeded, then out_of_stock.
# Finding our own claim value (a retried command whose reply was lost) is our claim, and the
# gate is not asked again: the first run admitted the order.
# The status part is SET_STATUS_LUA itself, run as a local function whose KEYS and ARGV are
# KEYS[1..2] and ARGV[4+n..]: it only moves a status forward.
ADMIT_LUA = (
    """
local n = tonumber(ARGV[3])
local gate = n > 0
local prev = redis.call('GET', KEYS[3])
if prev then
  if prev ~= ARGV[1] then return prev end
  gate = false
end
if gate then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[3 + n + i]) == 0 then
      local p = redis.call('HMGET', KEYS[3 + i], 'active', 'available', 'limit_per_customer')
      local available, limit = tonumber(p[2]), tonumber(p[3])
      local asked = tonumber(ARGV[3 + i])
      if p[1] == '0' then return {i - 1, 'discontinued', available or 0, limit or -1} end
      if limit and asked > limit then
        return {i - 1, 'limit_exceeded', available or 0, limit}
      end
      if available and available < asked then
        return {i - 1, 'out_of_stock', available, limit or -1}
      end
    end
  end
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
local recent = KEYS[4 + 2 * n]
redis.call('ZADD', recent, ARGV[4 + n], ARGV[5 + n])
redis.call('ZREMRANGEBYRANK', recent, 0, -1 - tonumber(ARGV[6 + n]))
redis.call('EXPIRE', recent, ARGV[7 + n])
local function set_status(KEYS, ARGV)
"""
    + SET_STATUS_LUA
    + """
end
set_status({KEYS[1], KEYS[2]}, {unpack(ARGV, 8 + n)})
return nil
"""
)


def admit_call(
    config: IngressConfig,
    order: OrderRequest,
    order_id: str,
    claim: tuple[str, bytes, int],
    status_args: Sequence[Any],
    *,
    customer_id: str,
    placed_us: int,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ``ADMIT_LUA``; ``claim`` is (key, value, ttl ms)."""
    keys = config.keys
    gated = order.items if config.settings.sold_out_gate else []
    claim_key, claim_value, claim_ttl_ms = claim
    redis_keys = [
        keys.order(order_id),
        keys.order_channel(order_id),
        claim_key,
        *(keys.product(line.product_id) for line in gated),
        *(keys.product_pending(line.product_id) for line in gated),
        keys.customer_orders(customer_id),
    ]
    args = [claim_value, claim_ttl_ms, len(gated), *(line.quantity for line in gated)]
    recent = [placed_us, order_id, CUSTOMER_RECENT_ORDERS, ORDER_TTL_S]
    return redis_keys, [*args, *recent, *status_args]


def refusal(order: OrderRequest, reply: Any) -> NotAvailable | None:
    """The script's reply as the 409 to raise, or None when it did not refuse."""
    if not isinstance(reply, list | tuple) or len(reply) != 4:
        return None
    line_no, reason, available, limit = reply
    line = order.items[int(line_no)]
    return NotAvailable(
        line_no=int(line_no),
        product_id=line.product_id,
        quantity=line.quantity,
        reason=reason.decode() if isinstance(reason, bytes) else str(reason),
        available=int(available),
        limit=None if int(limit) < 0 else int(limit),
    )


class CommandGate:
    """Opens the gate for a product while an admin command for it is on its way."""

    def __init__(self, config: IngressConfig, redis: Any) -> None:
        self._readmodel = ReadModel(config.keys)
        self._redis = redis
        # nobody reads the pending sets with the gate off: admin commands then need no Redis
        gate = config.settings.sold_out_gate
        self._pause_ms = int(config.settings.sold_out_gate_pause_s * 1000) if gate else 0

    async def hold_open(self, product_id: str, command_id: str) -> None:
        """Until the stock agent has applied ``command_id`` (at most the pause)."""
        if self._pause_ms > 0:
            call = self._readmodel.hold_pending(product_id, command_id, self._pause_ms)
            await self._redis.eval(*call.eval_args())
