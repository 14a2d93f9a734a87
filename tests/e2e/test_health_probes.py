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
    """The status code and body; (0, {}) while nothing answers (a program restarting: the
    sink exits when PostgreSQL's restart took its shard lock, and waits for it again)."""
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return 0, {}
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
            answers: list[dict] = []

            def unready_for_the_database(u: str = url, seen: list[dict] = answers) -> bool:
                code, body = probe(u)
                seen.append(body)
                return code == 503 and not body["checks"]["database"]["ok"]

            eventually(f"{name} not ready for the database", unready_for_the_database)
            assert answers[-1]["status"] == "unavailable"
            assert "PostgreSQL" in answers[-1]["checks"]["database"]["detail"]
            # alive: it waits and retries
            live = url.replace("/readyz", "/livez")
            eventually(f"{name} alive", lambda u=live: probe(u)[0] == 200)
    finally:
        ctl("start", "postgres")
    for name, url in writers.items():
        eventually(f"{name} ready again", lambda u=url: probe(u)[0] == 200, timeout_s=120)
        # a program restarted (the sink, its lock gone with PostgreSQL's restart) can be
        # ready before the supervisor counts it RUNNING; the next test wants it RUNNING
        eventually(f"{name} RUNNING", lambda n=name: "RUNNING" in ctl("status", n))
