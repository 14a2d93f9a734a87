"""Liveness and readiness over HTTP, next to the Prometheus metrics, for the programs
without a web framework of their own (the sink and the relay; a worker answers the same
paths on its Faust web server, ``streams.health``).

``GET /livez``: the program's main loop came round within its bound (a ``Heartbeat`` it
beats every round, also while it backs off from a failure). ``GET /readyz``: every readiness
check passes. Both answer ``{"status": "ok" | "unavailable", "checks": {name: {"ok": bool,
"detail": str}}}`` with 200 or 503, so the stack, compose and Kubernetes read one answer.
``GET /metrics``: the registry, as prometheus_client's own server serves it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg
from prometheus_client import CollectorRegistry, make_wsgi_app

Check = Callable[[], tuple[bool, str]]


@dataclass
class Heartbeat:
    """When a loop last came round (``time.monotonic``)."""

    at: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.at = time.monotonic()

    def check(self, within_s: float) -> Check:
        def alive() -> tuple[bool, str]:
            age = time.monotonic() - self.at
            return age <= within_s, f"last round {age:.1f}s ago (bound {within_s:g}s)"

        return alive


def flag(value: Callable[[], bool], yes: str, no: str) -> Check:
    return lambda: (True, yes) if value() else (False, no)


def database_reachable(conninfo: str, timeout_s: int = 2, cache_s: float = 1.0) -> Check:
    """``SELECT 1`` on a fresh connection (bounded), its answer reused for ``cache_s``."""
    last: list[Any] = [0.0, (False, "not checked")]
    lock = threading.Lock()

    def reachable() -> tuple[bool, str]:
        with lock:
            if time.monotonic() - last[0] < cache_s:
                return last[1]
            try:
                with psycopg.connect(conninfo, connect_timeout=timeout_s) as conn:
                    conn.execute("SELECT 1")
                answer = (True, "PostgreSQL answers")
            except psycopg.Error as error:
                answer = (False, f"PostgreSQL: {str(error).strip().splitlines()[0][:200]}")
            last[:] = [time.monotonic(), answer]
            return answer

    return reachable


def lag_within(lag: Callable[[], Mapping[tuple[str, int], int]], bound: int) -> Check:
    def caught_up() -> tuple[bool, str]:
        current = dict(lag())
        if not current:
            return True, "no partition lag known"
        (topic, partition), worst = max(current.items(), key=lambda item: item[1])
        return worst <= bound, f"most behind: {topic}[{partition}] {worst} (bound {bound})"

    return caught_up


def answer(checks: Mapping[str, Check]) -> tuple[int, dict[str, Any]]:
    """The status code and body for ``checks``; a check that raises fails with its error."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        try:
            ok, detail = check()
        except Exception as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        results[name] = {"ok": ok, "detail": detail}
    healthy = all(r["ok"] for r in results.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    return (200 if healthy else 503), body


def health_app(
    registry: CollectorRegistry, live: Mapping[str, Check], ready: Mapping[str, Check]
) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)
    probes = {"/livez": live, "/readyz": ready}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        checks = probes.get(environ.get("PATH_INFO", ""))
        if checks is None:
            return metrics(environ, start_response)
        code, body = answer(checks)
        payload = json.dumps(body, sort_keys=True).encode()
        status = "200 OK" if code == 200 else "503 Service Unavailable"
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        pass


def serve(
    registry: CollectorRegistry,
    port: int,
    host: str,
    live: Mapping[str, Check],
    ready: Mapping[str, Check],
) -> WSGIServer:
    """Serve ``/metrics``, ``/livez`` and ``/readyz`` at ``host:port`` from a daemon thread."""
    server = make_server(
        host, port, health_app(registry, live, ready), _Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
