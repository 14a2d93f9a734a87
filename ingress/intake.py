"""Order intake: one order in, one ``OrderLineRequested`` per line out, 202 only after acks.

Redis commands per order: one before publishing (``ingress.admission.ADMIT_LUA``: the
idempotency claim, the sold-out gate and the ``accepted`` read-model status in one script; an
order the gate refuses ends there, as a 409 with nothing written) and one after (a SET of the
stored response, only when an Idempotency-Key was sent). Each waits for its own reply; in
production (``ingress.redisbatch.BatchedRedis``) the commands of concurrent requests go out
in shared pipelines, so the round trips are shared. A failed or partial publish is compensated
with a ``CancelOrder`` for the order id (the settler releases whatever got reserved; its
hold-time expiry is the safety net), the claim and the read-model entry are removed, and
the client gets 503.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from ingress.admission import ADMIT_LUA, admit_call, refusal
from ingress.config import IngressConfig
from ingress.errors import IdempotencyInFlight, IdempotencyKeyReused, Unavailable
from ingress.idempotency import Claim, IdempotencyStore, fingerprint
from ingress.publisher import Message, Publisher, PublishError
from ingress.validation import OrderRequest
from orderstream.readmodel import status_args
from schemas import codec, topics
from schemas.common import event_id_for, utcnow
from schemas.orders import CancelOrder, OrderLineRequested

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
        *,
        new_order_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._config = config
        self._settings = config.settings
        self._redis = redis
        self._publisher = publisher
        self._idempotency = idempotency
        self._new_order_id = new_order_id
        self._requests_topic = self._settings.topics(topics.ORDER_REQUESTS)
        self._cancel_topic = self._settings.topics(topics.ORDER_CANCELLATIONS)

    async def place(
        self, order: OrderRequest, *, scope: str, idempotency_key: str | None
    ) -> Response:
        order_id = self._new_order_id()
        request_fp = fingerprint("POST /v1/orders", _request_encoder.encode(order))
        claim = await self._admit(order, order_id, scope, idempotency_key, request_fp)
        if claim is not None and claim.previous is not None:
            return self._answer_retry(claim, request_fp)

        try:
            await self._publisher.publish(
                self._lines(order, order_id), self._settings.publish_timeout_s
            )
        except PublishError as exc:
            await self._compensate(order_id, claim, exc)
            raise Unavailable("the order could not be queued; nothing was accepted") from None

        location = f"/v1/orders/{order_id}"
        body = msgspec.json.encode({"order_id": order_id, "status": "accepted"})
        if claim is not None:
            try:
                await self._idempotency.complete(claim, request_fp, 202, body, location)
            except Exception:
                # The order is in Kafka: it is accepted. Only the replay is lost (logged).
                logger.exception("could not store the idempotent response of %s", order_id)
        return Response(202, body, location)

    async def _admit(
        self, order: OrderRequest, order_id: str, scope: str, key: str | None, request_fp: str
    ) -> Claim | None:
        """Claim the key, pass the sold-out gate, mark ``accepted``: one script, one trip.

        Raises ``NotAvailable`` when the gate refuses (nothing was written)."""
        claim = None
        if key is not None:
            claim_key = self._idempotency.key(scope, key)
            claim_value = self._idempotency.claim_value(request_fp, order_id)
            claim = (claim_key, claim_value, self._idempotency.lock_ms)
        fields = {
            "customer_id": order.customer_id,
            "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in order.items],
            "updated_at": utcnow().isoformat(),
        }
        redis_keys, args = admit_call(
            self._config, order, order_id, claim, status_args("accepted", fields)
        )
        try:
            # EVAL (not EVALSHA): no NOSCRIPT after a Redis restart, no SCRIPT EXISTS round
            # trip; Redis caches the compiled script by its hash.
            reply = await self._redis.eval(ADMIT_LUA, len(redis_keys), *redis_keys, *args)
        except Exception as exc:
            logger.warning("redis unavailable for order intake: %s", exc)
            raise Unavailable(
                "order intake is unavailable (read model / idempotency store)"
            ) from None
        refused = refusal(order, reply)
        if refused is not None:
            raise refused
        if claim is None:
            return None
        return self._idempotency.outcome(claim[0], claim[1], reply)

    def _answer_retry(self, claim: Claim, request_fp: str) -> Response:
        # (the script wrote nothing for this request's order id)
        previous = claim.previous
        assert previous is not None
        if previous.fingerprint != request_fp:
            raise IdempotencyKeyReused()
        if previous.state != "done":
            raise IdempotencyInFlight()
        return Response(previous.status, previous.body, previous.location, replayed=True)

    def _lines(self, order: OrderRequest, order_id: str) -> list[Message]:
        count = len(order.items)
        expected = None if order.expected_total is None else Decimal(order.expected_total)
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
                        customer_id=order.customer_id,
                        product_id=line.product_id,
                        quantity=line.quantity,
                        expected_total=expected,
                        requested_at=now,
                    )
                ),
            )
            for line_no, line in enumerate(order.items)
        ]

    async def _compensate(self, order_id: str, claim: Claim | None, exc: PublishError) -> None:
        logger.warning(
            "order %s: %d of %d lines acked; compensating", order_id, exc.acked, exc.total
        )
        cancel = CancelOrder(event_id=event_id_for(order_id, "cancel"), order_id=order_id)
        try:
            await self._publisher.publish(
                [Message(self._cancel_topic, order_id.encode(), codec.encode(cancel))],
                self._settings.publish_timeout_s,
            )
        except PublishError:
            # The settler's hold-time expiry rejects the partial order and releases its lines.
            logger.error("order %s: compensating CancelOrder not published", order_id)
        try:
            await self._redis.delete(self._config.keys.order(order_id))
            if claim is not None:
                await self._idempotency.release(claim)
        except Exception:
            logger.exception("order %s: could not release the idempotency claim", order_id)
