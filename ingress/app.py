"""The composition root: ``create_app(settings, publisher, redis, ...)`` and ``get_app()``.

An ASGI app (``falcon.asgi``) on gunicorn's ASGI worker with uvloop:
``gunicorn -c ingress/gunicorn_conf.py 'ingress.app:get_app()'``. ``redis`` is a
redis.asyncio client (or anything with its coroutine methods); ``get_app`` passes what
``connect_redis`` builds from the ``IngressConfig``: by default an
``ingress.redisbatch.BatchedRedis`` over an ``ingress.respwire.RespWire``, and the
long-polls then subscribe over ``respwire`` too (``readside.StatusWaiter``).
``publisher`` is an ``ingress.publisher.Publisher``.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import msgspec

from ingress import errors, resources
from ingress.admission import CommandGate
from ingress.auth import AuthMiddleware
from ingress.config import IngressConfig
from ingress.idempotency import IdempotencyStore
from ingress.intake import OrderIntake
from ingress.metrics import MetricsMiddleware, MetricsResource
from ingress.openapi import build_spec
from ingress.publisher import KafkaPublisher, Publisher
from ingress.ratelimit import RateLimiter, RedisRateLimiter
from ingress.readside import Fallback, NoFallback, OrderReader, ProductReader, StatusWaiter
from ingress.shop import ShopResource
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | IngressConfig,
    publisher: Publisher,
    redis: Any,
    *,
    fallback: Fallback | None = None,
    limiter: RateLimiter | None = None,
) -> falcon.asgi.App:
    config = (
        settings if isinstance(settings, IngressConfig) else IngressConfig.from_settings(settings)
    )
    s = config.settings
    fallback = fallback or NoFallback()
    limiter = limiter or RedisRateLimiter(redis, s.rate_limit_per_second, config.namespace)
    idempotency = IdempotencyStore(
        redis,
        keys=config.keys,
        ttl_s=s.idempotency_ttl_s,
    )
    orders = OrderReader(redis, config.keys, fallback)
    products = ProductReader(redis, config.keys, fallback)
    waiter = StatusWaiter(redis, config.keys, config.wait_recheck_s)

    middleware: list[Any] = [
        MetricsMiddleware(),
        AuthMiddleware(storefront_key=s.storefront_key, admin_key=s.admin_key, limiter=limiter),
        Shutdown(publisher, redis, waiter),
    ]
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    app.add_route(
        "/v1/orders",
        resources.OrdersResource(
            s, OrderIntake(config, redis, publisher, idempotency), orders, waiter
        ),
    )
    app.add_route("/v1/orders/{order_id:uuid}", resources.OrderResource(s, orders, waiter))
    app.add_route(
        "/v1/orders/{order_id:uuid}/cancel", resources.OrderCancelResource(s, orders, publisher)
    )
    app.add_route("/v1/products", resources.ProductsResource(products))
    commands = resources.CommandSender(s, publisher, CommandGate(config, redis))
    app.add_route("/v1/products/{product_id}", resources.ProductResource(products, commands))
    app.add_route("/v1/products/{product_id}/restock", resources.RestockResource(commands))
    shop = ShopResource()
    app.add_route("/shop", shop)  # (trailing slashes are stripped: /shop/ is this too)
    app.add_route("/shop/{name}", shop, suffix="file")
    app.add_route("/healthz", resources.HealthResource())
    app.add_route("/readyz", resources.ReadyResource(redis, publisher))
    app.add_route("/metrics", MetricsResource(config.prometheus_multiproc_dir))
    app.add_route("/v1/openapi.json", resources.OpenApiResource(msgspec.json.encode(build_spec(s))))
    return app


class Shutdown:
    """Closes the Kafka producer and the Redis clients when the server stops (ASGI lifespan)."""

    def __init__(self, publisher: Publisher, redis: Any, waiter: StatusWaiter) -> None:
        self._closing = (publisher.close, waiter.close, getattr(redis, "aclose", None))

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        for close in self._closing:
            if close is None:
                continue
            try:
                await close()
            except Exception:
                logger.exception("closing %r", close)


def connect_redis(config: IngressConfig) -> Any:
    """The ingress' Redis client, as ``config`` chooses it: redis.asyncio, under a
    ``BatchedRedis`` (``redis_batch``) whose batches go out on a ``RespWire`` for a
    redis:// URL (``redis_client="wire"``) or on redis-py's pipelines."""
    from ingress.redisbatch import BatchedRedis
    from ingress.redisconn import connect
    from ingress.respwire import RespWire

    url = config.settings.redis_url
    client: Any = connect(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=64,
    )
    if not config.redis_batch:
        return client
    # concurrent requests share round trips, over one hiredis connection (redis://)
    wire = None
    if config.redis_client == "wire" and url.startswith("redis://"):
        wire = RespWire(url, timeout_s=5, connect_timeout_s=2)
    return BatchedRedis(client, wire=wire)


def get_app() -> falcon.asgi.App:
    """Real collaborators from the environment (``.local/stack.env`` + variables), read once."""
    from ingress.store import SqlStore

    config = IngressConfig.from_env()
    s = config.settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    publisher = KafkaPublisher(s.kafka_bootstrap, linger_ms=config.kafka_linger_ms)
    # the fallback reads may be a little stale: the replica when there is one
    fallback = SqlStore(s.read_database_url)
    return create_app(config, publisher, connect_redis(config), fallback=fallback)
