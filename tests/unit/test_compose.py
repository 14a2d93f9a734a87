"""compose.yaml stays a valid description of the same stack as `make up`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.app import WEB_PORT_BASE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVICES = {"kafka", "postgres", "redis", "init", "ingress", "worker", "sink", "relay"}
ONE_SHOT = {"init"}


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose_plugin() -> str | None:
    """Why `docker compose` cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "`docker compose version` timed out"
    if done.returncode != 0:
        return f"docker compose plugin missing: {(done.stderr or done.stdout).strip()[:200]}"
    return None


def test_compose_config_is_valid() -> None:
    reason = compose_plugin()
    if reason is not None:
        pytest.skip(reason)
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_services_exist() -> None:
    assert SERVICES <= set(load()["services"])


def test_kafka_image_matches_the_pom() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    kafka = load()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{match.group(1)}"
    assert str(kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"


def test_pipeline_services_wait_for_init_and_build_from_deploy() -> None:
    services = load()["services"]
    assert services["init"]["command"][:3] == ["orderstream", "stack", "init"]
    for name in ("ingress", "worker", "sink", "relay"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert DOCKERFILE.exists()


def health_url(service: dict[str, Any]) -> str:
    match = re.search(r"https?://[^'\"\s]+", " ".join(service["healthcheck"]["test"]))
    assert match is not None
    return match.group(0)


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = load()["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # each app service asks the port its command serves
    ingress = services["ingress"]
    bind = ingress["command"][ingress["command"].index("--bind") + 1]
    assert health_url(ingress) == f"http://127.0.0.1:{bind.rpartition(':')[2]}/healthz"
    worker = services["worker"]
    index = int(worker["command"][worker["command"].index("--index") + 1])
    assert health_url(worker) == f"http://127.0.0.1:{WEB_PORT_BASE + index}/metrics"
    for name in ("sink", "relay"):
        command = services[name]["command"]
        port = command[command.index("--metrics-port") + 1]
        assert health_url(services[name]) == f"http://127.0.0.1:{port}/metrics", name


def stages() -> list[list[str]]:
    """The Dockerfile's stages, each its instructions (continued lines joined) from FROM on."""
    lines = re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines()
    instructions = [line.strip() for line in lines if line.strip() and line[:1] != "#"]
    found: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc)\b")


def test_dockerfile_builds_wheels_with_a_compiler_and_ships_without_one() -> None:
    *builders, final = stages()
    (builder,) = builders
    match = re.fullmatch(r"FROM (\S+) AS (\S+)", builder[0], re.IGNORECASE)
    assert match is not None, builder[0]
    image, name = match.groups()
    assert image.startswith("python:3.11-slim")
    assert any("apt-get install" in i and "build-essential" in i for i in builder)
    assert any(re.search(r"pip wheel .*--wheel-dir /wheels", i) for i in builder)

    assert re.fullmatch(r"FROM python:3\.11-slim\S*", final[0]), final[0]
    assert not any(COMPILERS.search(i) for i in final), "a compiler in the final stage"
    installs = [i for i in final if "pip install" in i]
    assert installs
    for install in installs:
        assert "--no-index" in install and "--find-links /wheels" in install, install
        assert f"from={name},source=/wheels,target=/wheels" in install, install
    # the source tree at /app, where the programs and gunicorn's config run from
    assert "WORKDIR /app" in final
    assert "COPY . ." in final


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".local", "**/__pycache__"} <= set(ignore)
