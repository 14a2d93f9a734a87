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

from ingress import customers as customers_
from ingress import errors, resources
from ingress.accounts import AccountStore
from ingress.admission import CommandGate
from ingress.auth import AuthMiddleware
from ingress.config import IngressConfig
from ingress.customers import SignInLimits
from ingress.history import HistoryStore, NoHistory, OrderHistory
from ingress.idempotency import IdempotencyStore
from ingress.identity import CustomerTokens, Identity
from ingress.intake import OrderIntake
from ingress.metrics import MetricsMiddleware, MetricsResource
from ingress.openapi import build_spec
from ingress.passwords import PasswordHasher
from ingress.publisher import KafkaPublisher, Publisher
from ingress.ratelimit import RateLimiter, RedisRateLimiter
from ingress.readside import Fallback, NoFallback, OrderReader, ProductReader, StatusWaiter
from ingress.shop import ShopResource
from ingress.tokens import SigningKeys, TokenAuthority
from orderstream.core import tracing
from orderstream.core.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | IngressConfig,
    publisher: Publisher,
    redis: Any,
    *,
    fallback: Fallback | None = None,
    limiter: RateLimiter | None = None,
    history: HistoryStore | None = None,
    accounts: AccountStore | None = None,
    signing_keys: SigningKeys | None = None,
) -> falcon.asgi.App:
    """Customers sign in only with ``signing_keys`` and ``accounts`` (else the sign-in
    endpoints answer 503 and no access token is valid)."""
    config = (
        settings if isinstance(settings, IngressConfig) else IngressConfig.from_settings(settings)
    )
    s = config.settings
    ns = config.namespace
    fallback = fallback or NoFallback()
    limiter = limiter or RedisRateLimiter(redis, s.rate_limit_per_second, ns)
    customers = None if signing_keys is None else customer_tokens(s, signing_keys, redis, config)
    identity = None
    if customers is not None and accounts is not None:
        hasher = PasswordHasher(
            time_cost=s.argon2_time_cost,
            memory_kib=s.argon2_memory_kib,
            parallelism=s.argon2_parallelism,
        )
        identity = Identity(
            accounts=accounts, hasher=hasher, tokens=customers, refresh_ttl_s=s.refresh_token_ttl_s
        )
    sign_in = SignInLimits(
        RedisRateLimiter(
            redis, s.auth_rate_limit_per_ip_per_minute, ns, window_s=60, name="rl-signin-ip"
        ),
        RedisRateLimiter(
            redis, s.auth_rate_limit_per_email_per_minute, ns, window_s=60, name="rl-signin-email"
        ),
    )
    customer_limiter = RedisRateLimiter(
        redis, s.customer_rate_limit_per_second, ns, name="rl-customer"
    )
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
        AuthMiddleware(
            storefront_key=s.storefront_key,
            admin_key=s.admin_key,
            limiter=limiter,
            customers=customers,
            customer_limiter=customer_limiter,
        ),
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
    app.add_route("/v1/auth/register", customers_.RegisterResource(s, identity, sign_in))
    app.add_route("/v1/auth/login", customers_.LoginResource(s, identity, sign_in))
    app.add_route("/v1/auth/refresh", customers_.RefreshResource(s, identity, sign_in))
    app.add_route("/v1/auth/logout", customers_.LogoutResource(s, identity, sign_in, customers))
    app.add_route("/v1/auth/me", customers_.MeResource(identity))
    app.add_route("/.well-known/jwks.json", customers_.JwksResource(customers))
    order_history = customers_.CustomerOrdersResource(
        OrderHistory(redis, config.keys, history or NoHistory())
    )
    app.add_route("/v1/customers/me/orders", order_history)
    app.add_route("/v1/customers/{customer_id}/orders", order_history, suffix="customer")
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


def customer_tokens(
    s: Settings, keys: SigningKeys, redis: Any, config: IngressConfig
) -> CustomerTokens:
    authority = TokenAuthority(
        keys,
        issuer=s.jwt_issuer,
        audience=s.jwt_audience,
        ttl_s=s.access_token_ttl_s,
        leeway_s=s.jwt_leeway_s,
    )
    return CustomerTokens(authority, redis, config.keys, s.jwt_leeway_s)


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


def get_app() -> Any:
    """Real collaborators from the environment (``.local/stack.env`` + variables), read once:
    the ``falcon.asgi.App``, behind the trace middleware when traces are on."""
    from ingress.accounts import SqlAccounts
    from ingress.store import SqlStore

    config = IngressConfig.from_env()
    s = config.settings
    tracing.configure(s, "ingress")
    publisher = KafkaPublisher(s.kafka_bootstrap, linger_ms=config.kafka_linger_ms)
    # the fallback and history reads may be a little stale: the replica when there is one
    fallback = SqlStore(s.read_database_url)
    # every worker reads the same key file; a file that is set but unusable stops the start
    keys = SigningKeys.from_file(s.jwt_keys_file) if s.jwt_keys_file else None
    if keys is None:
        logger.warning("ORDERSTREAM_JWT_KEYS_FILE is not set: customers cannot sign in")
    app = create_app(
        config,
        publisher,
        connect_redis(config),
        fallback=fallback,
        history=fallback,
        accounts=SqlAccounts(s.database_url),  # writes: the primary
        signing_keys=keys,
    )
    return tracing.instrument_asgi(app)
