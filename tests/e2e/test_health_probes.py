"""Every program answers /livez and /readyz, and readiness follows what it depends on.

Through HTTP only, on the ports the stack's configuration gives; PostgreSQL is stopped
through the stack's supervisor and started again."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from supervised import ctl

from orderstream.stack.config import StackConfig
from orderstream.stack.pipeline import readiness_urls


def probe(url: str) -> tuple[int, dict]:
    response = httpx.get(url, timeout=5)
    return response.status_code, response.json()


def eventually(what: str, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g}s: {what}"
        time.sleep(0.5)


@pytest.fixture
def urls(stack) -> dict[str, str]:
    if stack.kind == "testcontainers":
        pytest.skip("the probes are asked on the local stack's ports")
    return readiness_urls(StackConfig.from_env())


def test_every_program_is_alive_and_ready(urls: dict[str, str]) -> None:
    assert set(urls) >= {"ingress", "worker-0", "sink", "relay"}
    for name, ready in urls.items():
        if name == "ingress":  # the ingress's liveness is /healthz (docs/api.md)
            assert httpx.get(ready.replace("/readyz", "/healthz"), timeout=5).status_code == 200
        else:
            code, body = probe(ready.replace("/readyz", "/livez"))
            assert (code, body["status"]) == (200, "ok"), (name, body)
        eventually(f"{name} ready", lambda u=ready: probe(u)[0] == 200)
    code, body = probe(urls["worker-0"])
    assert {"group", "tables", "lag"} <= set(body["checks"]), body


def test_without_postgresql_the_sink_and_relay_are_alive_but_not_ready(
    urls: dict[str, str],
) -> None:
    writers = {name: urls[name] for name in ("sink", "relay")}
    for name, url in writers.items():
        eventually(f"{name} ready", lambda u=url: probe(u)[0] == 200)
    ctl("stop", "postgres")
    try:
        for name, url in writers.items():
            eventually(f"{name} not ready", lambda u=url: probe(u)[0] == 503)
            code, body = probe(url)
            assert body["status"] == "unavailable"
            assert not body["checks"]["database"]["ok"], body
            assert "PostgreSQL" in body["checks"]["database"]["detail"]
            code, body = probe(url.replace("/readyz", "/livez"))
            assert code == 200, (name, body)  # alive: it waits and retries
    finally:
        ctl("start", "postgres")
    for name, url in writers.items():
        eventually(f"{name} ready again", lambda u=url: probe(u)[0] == 200, timeout_s=120)
