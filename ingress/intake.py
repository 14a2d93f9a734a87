"""Order intake: one order in, one ``OrderLineRequested`` per line out, 202 only after acks.

Redis commands per order: one before publishing (``ingress.admission.ADMIT_LUA``: the
idempotency claim, the sold-out gate and the ``accepted`` read-model status in one script; an
order the gate refuses ends there, as a 409 with nothing written) and one after (a SET of the
stored response). In production (``ingress.redisbatch.BatchedRedis``) the commands of
concurrent requests go out in shared pipelines, so the round trips are shared.

The claim names the order (``schemas.orders.new_order_id``) and lives as long as the key.
A publish that is not acknowledged in time has an unknown outcome (the producer may still
deliver what it holds): the claim stays in flight, the ``accepted`` status is taken back, and
the client gets 503 ``outcome-unknown`` naming the order. A retry of the same request that
finds the claim in flight, after such a 503, a dropped connection or an ingress that died
before storing its answer, takes the order over and publishes its lines again; the pipeline
dedupes them per (order id, line). Nothing is compensated: the retry converges on the order,
and lines of an order that never all arrive expire in the settler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from ingress.admission import ADMIT_LUA, admit_call, refusal
from ingress.config import IngressConfig
from ingress.errors import IdempotencyKeyReused, OutcomeUnknown, Unavailable
from ingress.idempotency import Claim, IdempotencyStore, fingerprint
from ingress.orderdetails import address_record, payment_record
from ingress.publisher import Message, Publisher, PublishError
from ingress.validation import OrderRequest
from orderstream.core.logs import context
from orderstream.core.readmodel import ReadModel, status_args
from schemas import codec, topics
from schemas.common import event_id_for, utcnow
from schemas.orders import OrderLineRequested, new_order_id

logger = logging.getLogger(__name__)

_request_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    location: str | None
    replayed: bool = False


class OrderIntake:
    def __init__(
        self,
        config: IngressConfig,
        redis: Any,
        publisher: Publisher,
        idempotency: IdempotencyStore,
    ) -> None:
        self._config = config
        self._readmodel = ReadModel(config.keys)
        self._settings = config.settings
        self._redis = redis
        self._publisher = publisher
        self._idempotency = idempotency
        self._requests_topic = self._settings.topics(topics.ORDER_REQUESTS)

    async def place(
        self, order: OrderRequest, *, customer_id: str, scope: str, idempotency_key: str
    ) -> Response:
        """``customer_id``: the buyer (the body's for a key, the token's for a customer);
        ``scope``: whose Idempotency-Keys these are (``req.context.key_id``)."""
        order = msgspec.structs.replace(order, customer_id=customer_id)
        request_fp = fingerprint("POST /v1/orders", _request_encoder.encode(order))
        now = utcnow()
        fields = {
            "customer_id": customer_id,
            "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in order.items],
            "updated_at": now.isoformat(),
        }
        placed_us = int(now.timestamp() * 1_000_000)
        claim = await self._admit(
            order, scope, idempotency_key, request_fp, fields, (customer_id, placed_us)
        )
        previous = claim.previous
        if previous is not None:
            if previous.fingerprint != request_fp:
                raise IdempotencyKeyReused()
            if previous.state == "done":
                return Response(previous.status, previous.body, previous.location, replayed=True)
            claim = self._idempotency.take_over(claim)
        order_id = claim.order_id

        try:
            await self._publisher.publish(
                self._lines(order, customer_id, order_id), self._settings.publish_timeout_s
            )
        except PublishError as exc:
            await self._forget_accepted(order_id, exc)
            raise OutcomeUnknown(order_id) from None

        location = f"/v1/orders/{order_id}"
        body = msgspec.json.encode({"order_id": order_id, "status": "accepted"})
        try:
            if previous is not None:  # taken over: the first attempt's status may be gone
                call = self._readmodel.set_status(order_id, "accepted", fields)
                await self._redis.eval(*call.eval_args())
            await self._idempotency.complete(claim, request_fp, 202, body, location)
        except Exception:
            # The order is in Kafka: it is accepted. A retry finds the claim in flight and
            # gets the same order.
            logger.exception(
                "could not store the idempotent response of %s",
                order_id,
                extra=context(order_id=order_id),
            )
        return Response(202, body, location)

    async def _admit(
        self,
        order: OrderRequest,
        scope: str,
        key: str,
        request_fp: str,
        fields: Mapping[str, object],
        placed: tuple[str, int],
    ) -> Claim:
        """Claim the key, pass the sold-out gate, mark ``accepted``: one script, one trip.

        A key already claimed comes back as ``Claim.previous`` with nothing written. Raises
        ``NotAvailable`` when the gate refuses (nothing was written)."""
        order_id = new_order_id(scope, key)
        claim_key = self._idempotency.key(scope, key)
        claim_value = self._idempotency.claim_value(request_fp, order_id)
        claim = (claim_key, claim_value, self._idempotency.ttl_ms)
        customer_id, placed_us = placed
        redis_keys, args = admit_call(
            self._config,
            order,
            order_id,
            claim,
            status_args("accepted", fields),
            customer_id=customer_id,
            placed_us=placed_us,
        )
        try:
            # EVAL (not EVALSHA): no NOSCRIPT after a Redis restart, no SCRIPT EXISTS round
            # trip; Redis caches the compiled script by its hash.
            reply = await self._redis.eval(ADMIT_LUA, len(redis_keys), *redis_keys, *args)
        except Exception as exc:
            logger.warning("redis unavailable for order intake: %s", exc)
            raise Unavailable(
                "order intake is unavailable (read model / idempotency store); nothing was accepted"
            ) from None
        refused = refusal(order, reply)
        if refused is not None:
            raise refused
        return self._idempotency.outcome(claim_key, order_id, reply)

    def _lines(self, order: OrderRequest, customer_id: str, order_id: str) -> list[Message]:
        """One record per line; the order's details (address, payment reference) ride on
        line 0 only: the settler keeps them with the order (DESIGN.md, "Order details")."""
        count = len(order.items)
        expected = None if order.expected_total is None else Decimal(order.expected_total)
        address = address_record(order.shipping_address)
        payment = payment_record(order.payment_method)
        now = utcnow()
        return [
            Message(
                self._requests_topic,
                line.product_id.encode(),
                codec.encode(
                    OrderLineRequested(
                        event_id=event_id_for(order_id, line_no, "requested"),
                        order_id=order_id,
                        line_no=line_no,
                        line_count=count,
                        customer_id=customer_id,
                        product_id=line.product_id,
                        quantity=line.quantity,
                        expected_total=expected,
                        shipping_address=address if line_no == 0 else None,
                        payment_method=payment if line_no == 0 else None,
                        requested_at=now,
                    )
                ),
            )
            for line_no, line in enumerate(order.items)
        ]

    async def _forget_accepted(self, order_id: str, exc: PublishError) -> None:
        """Take back the ``accepted`` status unless the pipeline has moved it on: until a
        retry publishes the order again, nobody can say it was accepted."""
        logger.warning(
            "order %s: %d of %d lines acked; outcome unknown until retried",
            order_id,
            exc.acked,
            exc.total,
            extra=context(order_id=order_id),
        )
        try:
            await self._redis.eval(*self._readmodel.forget_accepted(order_id).eval_args())
        except Exception:
            logger.exception(
                "order %s: could not take back its accepted status",
                order_id,
                extra=context(order_id=order_id),
            )
