"""compose.yaml stays a valid description of the same stack as `make up`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SERVICES = {"kafka", "postgres", "redis", "init", "ingress", "worker", "sink", "relay"}


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
    assert (ROOT / "deploy" / "Dockerfile").exists()
