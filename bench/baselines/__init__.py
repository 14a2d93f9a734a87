"""Baselines that imitate lock-based and Lua pre-deduction designs, with orderstream's HTTP shape.

- ``lock_app``: a Redis ``SET NX`` lock per product (bounded retries, random backoff), then one
  SQL transaction that checks and decrements stock and inserts the order and its items.
- ``lua_app`` + ``lua_worker``: a Redis Lua check-and-DECRBY pre-deduction, the pending order
  inserted in SQL, a Redis-list queue worker that completes it (``FOR UPDATE``, decrements SQL
  stock, marks it shipped) and gives the Redis units back when it cannot.
"""
