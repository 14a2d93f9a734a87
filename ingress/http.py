"""Request/response helpers shared by the resources: bounded JSON body, JSON answers."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import msgspec

from ingress.errors import (
    FieldError,
    MalformedJSON,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

_encoder = msgspec.json.Encoder()


async def read_json(req: falcon.asgi.Request, max_bytes: int) -> bytes:
    """The body of a JSON request: 415 unless JSON, 413 past ``max_bytes``, 400 when empty."""
    media = (req.content_type or "").split(";", 1)[0].strip().lower()
    if not (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise UnsupportedMediaType("send Content-Type: application/json")
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"the body may be at most {max_bytes} bytes")
    # Falcon's ASGI stream ends at the body's end (Content-Length or chunked); read at most
    # one byte past the limit, so an oversized chunked body is refused without reading it all.
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:  # a read returns at most one ASGI message's worth
        chunk = await req.stream.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the body may be at most {max_bytes} bytes")
    if not body.strip():
        raise MalformedJSON("the body is empty")
    return body


def send_json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = body if isinstance(body, bytes) else _encoder.encode(body)


def preferred_wait(header: str | None, maximum: float) -> float:
    """Seconds of ``Prefer: wait=N`` (RFC 7240), at most ``maximum``; 0 when absent. A
    preference that cannot be read is ignored, as the RFC asks."""
    for preference in (header or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return 0.0
        return min(seconds, maximum) if seconds > 0 else 0.0  # (nan > 0 is False)
    return 0.0


def query_int(req: falcon.Request, name: str, low: int, high: int, default: int) -> int:
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationFailed([FieldError(f"query:{name}", f"an integer from {low} to {high}")])
    return value


def query_seconds(req: falcon.Request, name: str, maximum: float) -> float:
    raw = req.get_param(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum:  # also rejects nan
        raise ValidationFailed(
            [FieldError(f"query:{name}", f"a number of seconds from 0 to {maximum:g}")]
        )
    return value
