"""HTTP resources: short handlers that validate at the edge and delegate."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import falcon
import falcon.asgi

from ingress import metrics
from ingress.admission import CommandGate
from ingress.auth import ADMIN, BUYER, PUBLIC
from ingress.errors import (
    CommandOutcomeUnknown,
    Conflict,
    FieldError,
    Forbidden,
    NotAvailable,
    NotFound,
    OutcomeUnknown,
    Unavailable,
    ValidationFailed,
)
from ingress.http import preferred_wait, query_int, query_seconds, read_json, send_json
from ingress.idempotency import fingerprint
from ingress.intake import OrderIntake
from ingress.publisher import Message, Publisher, PublishError
from ingress.readside import OrderReader, ProductReader, StatusWaiter
from ingress.validation import (
    DEFAULT_PAGE,
    MAX_PAGE,
    OrderRequest,
    ProductUpsert,
    RestockRequest,
    check_idempotency_key,
    check_order,
    check_product_id,
    decode,
)
from orderstream.core.settings import Settings
from schemas import codec, topics
from schemas.common import event_id_for
from schemas.inventory import Discontinue, InventoryCommand, Restock, UpsertProduct
from schemas.orders import TERMINAL_STATUSES, CancelOrder

logger = logging.getLogger(__name__)


class OrdersResource:
    """``POST /v1/orders``: 202 once Kafka has every line. With ``Prefer: wait=N`` (RFC 7240)
    the answer waits up to N seconds (at most ``max_wait_s``) for the order's final status
    and, when it comes, is 201 with the order as ``GET /v1/orders/{id}`` shows it and
    ``Preference-Applied``: one request instead of a POST and a long-poll."""

    auth = {"POST": BUYER}

    def __init__(
        self, settings: Settings, intake: OrderIntake, orders: OrderReader, waiter: StatusWaiter
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._orders = orders
        self._waiter = waiter

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        key = check_idempotency_key(req.get_header("Idempotency-Key"))
        order = decode(await read_json(req, self._settings.max_body_bytes), OrderRequest)
        check_order(order, self._settings)
        customer_id = buyer(req, order.customer_id)
        try:
            answer = await self._intake.place(
                order, customer_id=customer_id, scope=req.context.key_id, idempotency_key=key
            )
        except (Unavailable, OutcomeUnknown):
            metrics.PUBLISH_FAILURES.inc()
            raise
        except NotAvailable as refused:
            metrics.ORDERS_REFUSED.labels(refused.extensions["reason"]).inc()
            raise
        (metrics.ORDERS_REPLAYED if answer.replayed else metrics.ORDERS_ACCEPTED).inc()
        send_json(resp, answer.body, answer.status)
        if answer.location:
            resp.location = answer.location
        if answer.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        wait_s = preferred_wait(req.get_header("Prefer"), self._settings.max_wait_s)
        if wait_s and answer.status == 202 and answer.location:
            await self._answer_final(resp, answer.location.rsplit("/", 1)[-1], wait_s)

    async def _answer_final(self, resp: falcon.asgi.Response, order_id: str, wait_s: float) -> None:
        final = await self._waiter.wait_until(
            self._orders, order_id, TERMINAL_STATUSES.__contains__, wait_s
        )
        if final is not None and final["status"] in TERMINAL_STATUSES:
            send_json(resp, final, 201)
            resp.set_header("Preference-Applied", f"wait={wait_s:g}")


def buyer(req: falcon.asgi.Request, customer_id: str | None) -> str:
    """Who buys: a customer's token names them (a body ``customer_id`` must agree: 403);
    a key must name them in the body (422 without)."""
    own = req.context.customer_id
    if own is None:
        if customer_id is None:
            raise ValidationFailed([FieldError("customer_id", "required with a key")])
        return customer_id
    if customer_id not in (None, own):
        raise Forbidden("a customer orders for themselves only")
    return str(own)


async def visible_order(
    req: falcon.asgi.Request, orders: OrderReader, order_id: str
) -> dict[str, Any]:
    """The order, if the caller may see it: a key sees every order, a customer their own
    (another's is 404, as if it did not exist)."""
    found = await orders.find(order_id)
    own = req.context.customer_id
    if found is None or (own is not None and found[1] != own):
        raise NotFound("no such order")
    return found[0]


class OrderResource:
    auth = {"GET": BUYER}

    def __init__(self, settings: Settings, orders: OrderReader, waiter: StatusWaiter) -> None:
        self._settings = settings
        self._orders = orders
        self._waiter = waiter

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, order_id: uuid.UUID
    ) -> None:
        wait_s = query_seconds(req, "wait", self._settings.max_wait_s)
        found = await visible_order(req, self._orders, order_id.hex)
        if wait_s > 0 and found["status"] not in TERMINAL_STATUSES:
            found = (
                await self._waiter.wait_for_change(
                    self._orders, order_id.hex, found["status"], wait_s
                )
                or found
            )
        send_json(resp, found)


class OrderCancelResource:
    """202 and a ``CancelOrder``; already cancelled is 202 again (idempotent, nothing sent);
    shipped or rejected is 409."""

    auth = {"POST": BUYER}

    def __init__(self, settings: Settings, orders: OrderReader, publisher: Publisher) -> None:
        self._settings = settings
        self._orders = orders
        self._publisher = publisher

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, order_id: uuid.UUID
    ) -> None:
        status = (await visible_order(req, self._orders, order_id.hex))["status"]
        if status in ("shipped", "rejected"):
            raise Conflict(f"the order is {status} and can no longer be cancelled")
        if status != "cancelled":
            command = CancelOrder(
                event_id=event_id_for(order_id.hex, "cancel"), order_id=order_id.hex
            )
            topic = self._settings.topics(topics.ORDER_CANCELLATIONS)
            await publish(
                self._publisher,
                self._settings,
                Message(topic, order_id.hex.encode(), codec.encode(command)),
            )
        send_json(
            resp, {"order_id": order_id.hex, "status": status, "cancellation": "requested"}, 202
        )


class ProductsResource:
    auth = {"GET": PUBLIC}

    def __init__(self, products: ProductReader) -> None:
        self._products = products

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        limit = query_int(req, "limit", 1, MAX_PAGE, DEFAULT_PAGE)
        after = req.get_param("after")
        if after is not None:
            check_product_id(after, field="query:after")
        items, next_after = await self._products.page(limit, after)
        send_json(resp, {"items": items, "next": next_after})


class ProductResource:
    auth = {"GET": PUBLIC, "PUT": ADMIN, "DELETE": ADMIN}

    def __init__(self, products: ProductReader, commands: CommandSender) -> None:
        self._settings = commands.settings
        self._products = products
        self._commands = commands

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, product_id: str
    ) -> None:
        found = await self._products.get(check_product_id(product_id))
        if found is None:
            raise NotFound("no such product")
        send_json(resp, found)

    async def on_put(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, product_id: str
    ) -> None:
        check_product_id(product_id)
        raw = await read_json(req, self._settings.max_body_bytes)
        body = decode(raw, ProductUpsert)
        command = UpsertProduct(
            command_id=command_id(req, raw),
            product_id=product_id,
            name=body.name,
            price=_decimal(body.price),
            description=body.description or None,
            stock=body.stock,
            limit_per_customer=body.limit_per_customer,
        )
        await self._commands.send(resp, command)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, product_id: str
    ) -> None:
        check_product_id(product_id)
        command = Discontinue(command_id=command_id(req, b""), product_id=product_id)
        await self._commands.send(resp, command)


class RestockResource:
    auth = {"POST": ADMIN}

    def __init__(self, commands: CommandSender) -> None:
        self._settings = commands.settings
        self._commands = commands

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, product_id: str
    ) -> None:
        check_product_id(product_id)
        raw = await read_json(req, self._settings.max_body_bytes)
        body = decode(raw, RestockRequest)
        command = Restock(
            command_id=command_id(req, raw), product_id=product_id, quantity=body.quantity
        )
        await self._commands.send(resp, command)


class HealthResource:
    auth = {"GET": PUBLIC}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"status": "ok"})


class ReadyResource:
    auth = {"GET": PUBLIC}

    def __init__(self, redis: Any, publisher: Publisher) -> None:
        self._redis = redis
        self._publisher = publisher

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        checks = {"kafka": await self._publisher.ready(2.0), "redis": await _redis_ok(self._redis)}
        body = {"status": "ready" if all(checks.values()) else "unavailable", "checks": checks}
        send_json(resp, body, 200 if all(checks.values()) else 503)


class OpenApiResource:
    auth = {"GET": PUBLIC}

    def __init__(self, spec: bytes) -> None:
        self._spec = spec

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, self._spec)


def command_id(req: falcon.asgi.Request, body: bytes) -> str:
    """An admin command's id: derived from its Idempotency-Key (optional), the route and the
    body, so a retry of an unacknowledged command is the same command, which the stock agent
    applies once (while it is among the product's recent command ids); else random."""
    key = req.get_header("Idempotency-Key")
    if key is None:
        return uuid.uuid4().hex
    check_idempotency_key(key)
    return fingerprint(req.context.key_id, key, req.method, req.path, body)[:32]


async def publish(publisher: Publisher, settings: Settings, message: Message) -> None:
    try:
        await publisher.publish([message], settings.publish_timeout_s)
    except PublishError:
        raise CommandOutcomeUnknown() from None


class CommandSender:
    """Publishes an admin's inventory command, keyed by product id; 202 after the ack.

    First it opens the sold-out gate for the product (``ingress.admission.CommandGate``), so
    a restock is not refused at the door before the stock agent has applied it."""

    def __init__(self, settings: Settings, publisher: Publisher, gate: CommandGate) -> None:
        self.settings = settings
        self._publisher = publisher
        self._gate = gate
        self._topic = settings.topics(topics.INVENTORY_COMMANDS)

    async def send(self, resp: falcon.asgi.Response, command: InventoryCommand) -> None:
        try:
            await self._gate.hold_open(command.product_id, command.command_id)
        except Exception as exc:
            logger.warning("redis unavailable for an admin command: %s", exc)
            raise Unavailable(
                "the command could not be taken (Redis); nothing was accepted"
            ) from None
        message = Message(self._topic, command.product_id.encode(), codec.encode(command))
        await publish(self._publisher, self.settings, message)
        body = {
            "command_id": command.command_id,
            "product_id": command.product_id,
            "type": type(command).__struct_config__.tag,
        }
        send_json(resp, body, 202)


async def _redis_ok(redis: Any) -> bool:
    try:
        async with asyncio.timeout(2.0):
            return bool(await redis.ping())
    except Exception as exc:
        logger.info("redis not ready: %s", exc)
        return False


def _decimal(value: str) -> Any:
    from decimal import Decimal

    return Decimal(value)
