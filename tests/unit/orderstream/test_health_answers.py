"""orderstream.core.health: the probes' answers and the HTTP app serving them."""

from __future__ import annotations

import json
from typing import Any
from wsgiref.util import setup_testing_defaults

from prometheus_client import CollectorRegistry, Counter

from orderstream.core import health


def call(app: Any, path: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(app(environ, start_response))
    return seen["status"], body


def test_all_checks_passing_is_200_ok_with_each_check() -> None:
    code, body = health.answer({"a": lambda: (True, "fine"), "b": lambda: (True, "also")})
    assert code == 200
    assert body == {
        "status": "ok",
        "checks": {"a": {"ok": True, "detail": "fine"}, "b": {"ok": True, "detail": "also"}},
    }


def test_one_failing_or_raising_check_is_503_naming_it() -> None:
    def broken() -> tuple[bool, str]:
        raise ConnectionError("refused")

    code, body = health.answer({"a": lambda: (True, "fine"), "b": broken})
    assert code == 503 and body["status"] == "unavailable"
    assert body["checks"]["b"] == {"ok": False, "detail": "ConnectionError: refused"}


def test_the_app_serves_the_probes_as_json_and_the_metrics_beside_them() -> None:
    registry = CollectorRegistry()
    Counter("things", "things counted", registry=registry).inc()
    app = health.health_app(
        registry, live={"loop": lambda: (True, "turns")}, ready={"db": lambda: (False, "down")}
    )
    status, body = call(app, "/livez")
    assert status.startswith("200") and json.loads(body)["status"] == "ok"
    status, body = call(app, "/readyz")
    assert status.startswith("503") and json.loads(body)["checks"]["db"]["detail"] == "down"
    status, body = call(app, "/metrics")
    assert status.startswith("200") and b"things_total 1.0" in body


def test_a_heartbeat_is_alive_within_its_bound_only() -> None:
    beat = health.Heartbeat(at=0.0)
    assert not beat.check(60.0)()[0]  # long ago (monotonic time 0)
    beat.beat()
    ok, detail = beat.check(60.0)()
    assert ok and "bound 60s" in detail


def test_lag_within_names_the_partition_most_behind() -> None:
    check = health.lag_within(lambda: {("t", 0): 5, ("t", 3): 12}, bound=10)
    assert check() == (False, "most behind: t[3] 12 (bound 10)")
    assert health.lag_within(lambda: {}, bound=10)()[0]
