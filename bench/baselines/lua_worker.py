"""baseline_lua's queue worker: completes pending orders in SQL, gives Redis units back on failure.

Run as ``python -m bench.baselines.lua_worker`` (the harness does); ``BENCH_WORKER_THREADS``
threads each BLPOP the queue. As in the design it imitates, a popped order whose worker dies
before the commit stays ``accepted`` (the Redis-list queue has no redelivery): the harness
counts it lost.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import redis
import sqlalchemy as sa

from bench.baselines.config import BaselineSettings
from bench.baselines.prededuct import RedisStock
from bench.baselines.store import create_engine, create_redis

logger = logging.getLogger(__name__)

LOCK_ORDER = sa.text("SELECT status FROM orders WHERE order_id = :oid FOR UPDATE")
SELECT_ITEMS = sa.text("SELECT product_id, quantity FROM order_items WHERE order_id = :oid")
LOCK_STOCK = sa.text(
    "SELECT product_id, stock FROM products WHERE product_id = ANY(:pids) "
    "ORDER BY product_id FOR UPDATE"
)
DECREMENT = sa.text(
    "UPDATE products SET stock = stock - :q, updated_at = now() WHERE product_id = :pid"
)
FINISH = sa.text(
    "UPDATE orders SET status = :status, reason = :reason, updated_at = now() WHERE order_id = :oid"
)


def complete_order(conn: sa.Connection, order_id: str) -> str | None:
    """Decide a pending order in SQL; return its new status, or None if it was not pending."""
    row = conn.execute(LOCK_ORDER, {"oid": order_id}).first()
    if row is None or row.status != "accepted":
        return None
    wanted: dict[str, int] = {}
    for item in conn.execute(SELECT_ITEMS, {"oid": order_id}):
        wanted[item.product_id] = wanted.get(item.product_id, 0) + item.quantity
    stock = {r.product_id: r.stock for r in conn.execute(LOCK_STOCK, {"pids": sorted(wanted)})}
    if any(stock.get(pid, 0) < units for pid, units in wanted.items()):
        conn.execute(FINISH, {"status": "rejected", "reason": "out_of_stock", "oid": order_id})
        return "rejected"
    for pid, units in sorted(wanted.items()):
        conn.execute(DECREMENT, {"q": units, "pid": pid})
    conn.execute(FINISH, {"status": "shipped", "reason": None, "oid": order_id})
    return "shipped"


def handle(engine: sa.Engine, stock: RedisStock, order_id: str) -> None:
    try:
        with engine.begin() as conn:
            status = complete_order(conn, order_id)
    except sa.exc.SQLAlchemyError:
        logger.exception("order %s failed; giving its Redis units back", order_id)
        stock.release(order_id)
        with engine.begin() as conn:
            conn.execute(FINISH, {"status": "rejected", "reason": "error", "oid": order_id})
        stock.notify_done(order_id)
        return
    if status == "shipped":
        stock.settle(order_id)
    elif status == "rejected":
        stock.release(order_id)
    stock.notify_done(order_id)


def work(engine: sa.Engine, stock: RedisStock, stopping: threading.Event) -> None:
    while not stopping.is_set():
        try:
            popped = stock.client.blpop([stock.queue_key], timeout=1)
        except redis.RedisError:
            logger.exception("queue unavailable")
            stopping.wait(1)
            continue
        if popped is not None:
            handle(engine, stock, str(popped[1]))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = BaselineSettings.from_env()
    engine = create_engine(settings)
    stock = RedisStock(create_redis(settings), settings.redis_prefix)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threads = [
        threading.Thread(target=work, args=(engine, stock, stopping), name=f"lua-worker-{n}")
        for n in range(settings.worker_threads)
    ]
    for thread in threads:
        thread.start()
    logger.info("lua worker: %d threads on %s", len(threads), stock.queue_key)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
