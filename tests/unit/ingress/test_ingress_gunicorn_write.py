"""ingress.gunicorn_write: the same bytes on the wire as gunicorn's own write, in one send."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import util
from gunicorn.http import wsgi

from ingress import gunicorn_write


class Sock:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def _respond(write: Any, method: str, headers: list[tuple[str, str]], chunks: list[bytes]) -> Sock:
    req = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    sock = Sock()
    resp = wsgi.Response(req, sock, SimpleNamespace())
    resp.start_response("200 OK", headers)
    for chunk in chunks:
        write(resp, chunk)
    resp.close()
    return sock


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(wsgi.Response, "write", wsgi.Response.write)  # restored afterwards
    monkeypatch.setattr(util, "http_date", lambda *a: "Sat, 21 Nov 2026 07:00:00 GMT")
    assert gunicorn_write.install()
    return wsgi.Response.write


JSON = [("Content-Type", "application/json"), ("Content-Length", "15")]


@pytest.mark.parametrize(
    ("method", "headers", "chunks"),
    [
        ("GET", JSON, [b'{"status":"ok"}']),  # the common case: one chunk, Content-Length
        ("GET", [("Content-Type", "text/plain")], [b"a", b"bc"]),  # chunked (no length)
        ("HEAD", JSON, [b'{"status":"ok"}']),  # no body on the wire
        ("GET", JSON, [b'{"status":"ok"}', b"extra"]),  # never past Content-Length
        ("GET", JSON, [b"", b'{"status":"ok"}']),  # an empty first chunk
    ],
)
def test_same_bytes_as_gunicorn(
    patched: Any, method: str, headers: list[tuple[str, str]], chunks: list[bytes]
) -> None:
    ours = _respond(patched, method, headers, chunks)
    theirs = _respond(patched._original, method, headers, chunks)
    assert b"".join(ours.sends) == b"".join(theirs.sends)


def test_headers_and_a_small_body_go_in_one_send(patched: Any) -> None:
    sock = _respond(patched, "GET", JSON, [b'{"status":"ok"}'])
    assert len(sock.sends) == 1
    assert sock.sends[0].endswith(b'\r\n\r\n{"status":"ok"}')
    assert len(_respond(patched._original, "GET", JSON, [b'{"status":"ok"}']).sends) == 2
