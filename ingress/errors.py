"""The one error mapper: every error leaves as ``application/problem+json`` (RFC 9457).

Body: ``{type, title, status, detail}`` plus ``errors: [{field, message}]`` for validation
problems and, for a refused order, the extension members ``reason``, ``line_no``,
``product_id``, ``quantity``, ``available`` and (for ``limit_exceeded``) ``limit``.
Handlers raise an ``ApiError`` subclass (or any ``falcon.HTTPError``); the serializer
registered by ``install`` renders it; anything unexpected becomes a logged 500.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import falcon
import falcon.asgi
import msgspec

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:orderstream:problem:"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ApiError(falcon.HTTPError):
    """An error a client can rely on: status, a stable ``type`` slug, a human ``detail``."""

    status_code = 500
    slug = "internal"
    default_title = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            self.status_code, title=self.default_title, description=detail, headers=headers
        )
        self.errors = errors
        self.extensions = extensions or {}


class MalformedJSON(ApiError):
    status_code, slug, default_title = 400, "malformed-json", "Malformed JSON"


class IdempotencyKeyMissing(ApiError):
    """Every order needs a key: it is what makes a retry after a lost answer safe."""

    status_code, slug, default_title = 400, "idempotency-key-missing", "Idempotency-Key Missing"

    def __init__(self) -> None:
        super().__init__(
            "POST /v1/orders needs an Idempotency-Key header (a fresh one per order, the same "
            "one on every retry of it)",
            errors=[FieldError("header:Idempotency-Key", "required")],
        )


class Unauthorized(ApiError):
    status_code, slug, default_title = 401, "unauthorized", "Unauthorized"

    def __init__(
        self, detail: str = "a valid Authorization: Bearer <key> header is required"
    ) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="orderstream"'})


class InvalidToken(ApiError):
    """A bearer credential was sent but is neither a key nor a valid access token (RFC 6750:
    ``error="invalid_token"``): malformed, forged, expired, revoked, of an unknown key."""

    status_code, slug, default_title = 401, "invalid-token", "Invalid Token"

    def __init__(self, detail: str = "the bearer credential is not valid") -> None:
        challenge = (
            f'Bearer realm="orderstream", error="invalid_token", error_description="{detail}"'
        )
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InvalidCredentials(ApiError):
    """Sign-in refused: the same answer for an unknown email and a wrong password."""

    status_code, slug, default_title = 401, "invalid-credentials", "Invalid Credentials"

    def __init__(self) -> None:
        super().__init__(
            "the email or the password is wrong",
            headers={"WWW-Authenticate": 'Bearer realm="orderstream"'},
        )


class InvalidRefreshToken(ApiError):
    """A refresh token that is unknown, expired, already used, or of a revoked session."""

    status_code, slug, default_title = 401, "invalid-refresh-token", "Invalid Refresh Token"

    def __init__(self) -> None:
        super().__init__(
            "the refresh token is not valid; sign in again",
            headers={"WWW-Authenticate": 'Bearer realm="orderstream"'},
        )


class Forbidden(ApiError):
    status_code, slug, default_title = 403, "forbidden", "Forbidden"


class NotFound(ApiError):
    status_code, slug, default_title = 404, "not-found", "Not Found"


class Conflict(ApiError):
    status_code, slug, default_title = 409, "conflict", "Conflict"


class NotAvailable(Conflict):
    """The sold-out gate refused the order (``ingress.admission``): nothing was accepted."""

    TITLES = {
        "out_of_stock": "Out of stock",
        "discontinued": "Discontinued",
        "limit_exceeded": "Purchase limit exceeded",
    }

    def __init__(
        self,
        *,
        line_no: int,
        product_id: str,
        quantity: int,
        reason: str,
        available: int,
        limit: int | None = None,
    ) -> None:
        self.slug = reason.replace("_", "-")  # out-of-stock | discontinued | limit-exceeded
        self.default_title = self.TITLES[reason]
        what = {
            "out_of_stock": f"{available} available, {quantity} asked",
            "discontinued": "no longer sold",
            "limit_exceeded": f"at most {limit} per customer, {quantity} asked",
        }[reason]
        extensions: dict[str, object] = {
            "reason": reason,
            "line_no": line_no,
            "product_id": product_id,
            "quantity": quantity,
            "available": available,
        }
        if limit is not None:
            extensions["limit"] = limit
        super().__init__(
            f"line {line_no}: product {product_id}: {what}; nothing was accepted",
            extensions=extensions,
        )


class EmailTaken(Conflict):
    slug, default_title = "email-taken", "Email Already Registered"

    def __init__(self) -> None:
        super().__init__(
            "a customer with this email is already registered",
            errors=[FieldError("email", "already registered")],
        )


class PayloadTooLarge(ApiError):
    status_code, slug, default_title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(ApiError):
    status_code, slug, default_title = 415, "unsupported-media-type", "Unsupported Media Type"


class ValidationFailed(ApiError):
    status_code, slug, default_title = 422, "validation", "Invalid Request"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(
            detail or "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors
        )


class IdempotencyKeyReused(ApiError):
    status_code, slug, default_title = 422, "idempotency-key-reused", "Idempotency-Key Reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used with a different request")


class RateLimited(ApiError):
    status_code, slug, default_title = 429, "rate-limited", "Too Many Requests"

    def __init__(
        self, retry_after_s: int, detail: str = "request rate limit for this key exceeded"
    ) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(max(1, retry_after_s))},
        )


class Unavailable(ApiError):
    """A dependency is down before anything was sent: nothing was accepted."""

    status_code, slug, default_title = 503, "unavailable", "Service Unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class OutcomeUnknown(ApiError):
    """Kafka did not acknowledge every line in time, but may still take them: the order may
    or may not go ahead. A retry with the same Idempotency-Key and body converges on it."""

    status_code, slug, default_title = 503, "outcome-unknown", "Outcome Unknown"

    def __init__(self, order_id: str, retry_after_s: int = 1) -> None:
        super().__init__(
            f"order {order_id} was not acknowledged in time and may still go ahead; retry with "
            "the same Idempotency-Key and body to get its answer",
            headers={"Retry-After": str(retry_after_s), "Location": f"/v1/orders/{order_id}"},
            extensions={"order_id": order_id},
        )


class CommandOutcomeUnknown(ApiError):
    """Kafka did not acknowledge an admin command in time, but may still take it."""

    status_code, slug, default_title = 503, "outcome-unknown", "Outcome Unknown"

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__(
            "Kafka did not acknowledge the command in time and may still apply it; a retry of "
            "the same request (for a product command: with the same Idempotency-Key) is "
            "applied once",
            headers={"Retry-After": str(retry_after_s)},
        )


def problem_body(exc: falcon.HTTPError) -> dict[str, Any]:
    status = int(exc.status_code)
    slug = getattr(exc, "slug", None)
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{slug}" if slug else "about:blank",
        "title": exc.title or falcon.util.code_to_http_status(status)[4:],
        "status": status,
        "detail": exc.description or exc.title or "",
    }
    errors = getattr(exc, "errors", None)
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    body.update(getattr(exc, "extensions", None) or {})
    return body


_LOCATION = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def field_error(message: str) -> FieldError:
    """Turn msgspec's ``"... - at `$.items[0].quantity`"`` into a (field, message) pair; an
    unknown or missing field is named itself (``shipping_address.city``), not its object."""
    match = _LOCATION.match(message)
    text, path = (match["message"], match["path"] or "") if match else (message, "")
    unknown = _UNKNOWN.match(text)
    if unknown:
        path = f"{path}.{unknown['name']}"
        text = "unknown field (client prices and undeclared fields are not accepted)"
    missing = _MISSING.match(text)
    if missing:
        path, text = f"{path}.{missing['name']}", "required"
    return FieldError(field=path.lstrip(".") or "body", message=text)


def serialize_problem(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    resp.content_type = PROBLEM_JSON
    resp.data = msgspec.json.encode(problem_body(exc))


async def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any
) -> None:
    if isinstance(exc, falcon.HTTPError | falcon.HTTPStatus):
        raise exc
    logger.exception("unhandled error on %s %s", req.method, req.path)
    error = ApiError("unexpected error; it has been logged")
    resp.status = error.status
    serialize_problem(req, resp, error)


async def handle_validation(
    req: falcon.Request, resp: falcon.Response, exc: msgspec.ValidationError, params: Any
) -> None:
    error = ValidationFailed([field_error(str(exc))])
    resp.status = error.status
    serialize_problem(req, resp, error)


def install(app: falcon.asgi.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(msgspec.ValidationError, handle_validation)
    app.set_error_serializer(serialize_problem)
