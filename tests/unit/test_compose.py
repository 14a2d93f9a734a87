"""compose.yaml stays a valid description of the same stack as `make up`, with one Kafka node
or, with compose.replicated.yaml added, three; deploy/Dockerfile builds without a compiler in
the image it ships."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderstream.core.settings import _STACK_NAMES, Settings
from orderstream.stack import broker
from orderstream.stack.config import StackConfig
from streams.app import WEB_PORT_BASE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
REPLICATED = ROOT / "compose.replicated.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVICES = {"kafka", "postgres", "redis", "init", "ingress", "worker", "sink", "relay"}
APP_SERVICES = ("init", "ingress", "worker", "sink", "relay")
ONE_SHOT = {"init"}


def load(path: Path = COMPOSE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for mappings: key by key, the override winning
    (``test_the_override_sets_only_mappings_in_existing_services`` keeps it to those)."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
    return override


def replicated() -> dict[str, Any]:
    return merge(load(COMPOSE), load(REPLICATED))


TOPOLOGIES = {"single": load, "replicated": replicated}


@pytest.fixture(params=sorted(TOPOLOGIES))
def topology(request: pytest.FixtureRequest) -> dict[str, Any]:
    return TOPOLOGIES[request.param]()


def brokers(config: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The Kafka services, by node id."""
    found = {
        int(service["environment"]["KAFKA_NODE_ID"]): service
        for service in config["services"].values()
        if str(service.get("image", "")).startswith("apache/kafka:")
    }
    assert found
    return found


def broker_names(config: dict[str, Any]) -> dict[int, str]:
    return {
        int(service["environment"]["KAFKA_NODE_ID"]): name
        for name, service in config["services"].items()
        if str(service.get("image", "")).startswith("apache/kafka:")
    }


def env_int(env: dict[str, Any], name: str, default: int) -> int:
    return int(env.get(name, default))


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


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, REPLICATED]], ids=["single", "replicated"])
def test_compose_config_is_valid(files: list[Path]) -> None:
    reason = compose_plugin()
    if reason is not None:
        pytest.skip(reason)
    args = [arg for path in files for arg in ("-f", str(path))]
    done = subprocess.run(
        ["docker", "compose", *args, "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_services_exist(topology: dict[str, Any]) -> None:
    assert SERVICES <= set(topology["services"])


def test_kafka_image_matches_the_pom(topology: dict[str, Any]) -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    for kafka in brokers(topology).values():
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


def test_the_override_sets_only_mappings_in_existing_services() -> None:
    """Compose merges an override's mappings key by key but its sequences by rules of their
    own (ports are added to, volumes replaced by target): keeping to mappings keeps
    ``merge`` here what compose does."""
    base, override = load(COMPOSE)["services"], load(REPLICATED)["services"]
    for name in set(base) & set(override):
        for key, value in override[name].items():
            assert isinstance(value, dict), f"{name}.{key}"


def test_replicated_topology_has_three_voters() -> None:
    config = replicated()
    nodes, names = brokers(config), broker_names(config)
    assert sorted(nodes) == [1, 2, 3]
    expected = {node: f"{names[node]}:9093" for node in nodes}
    for kafka in nodes.values():
        env = kafka["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert {int(node): address for node, address in voters.items()} == expected
        assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"].split(",")
    # one cluster: the nodes format their storage with the same id
    assert len({str(kafka["environment"]["CLUSTER_ID"]) for kafka in nodes.values()}) == 1


def test_nodes_listen_on_the_local_stack_host_ports(topology: dict[str, Any]) -> None:
    for node, kafka in brokers(topology).items():
        port = StackConfig(root=ROOT, local=ROOT / ".local").broker_port(node)
        assert kafka["ports"] == [f"127.0.0.1:{port}:{port}"]
        env = kafka["environment"]
        assert f"HOST://:{port}" in env["KAFKA_LISTENERS"].split(",")
        assert f"HOST://127.0.0.1:{port}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_nodes_keep_their_data_apart(topology: dict[str, Any]) -> None:
    volumes = [tuple(kafka["volumes"]) for kafka in brokers(topology).values()]
    assert len(set(volumes)) == len(volumes)
    for mounts in volumes:
        assert mounts[0].split(":")[0] in topology["volumes"]


def test_replication_agrees_between_brokers_and_programs(topology: dict[str, Any]) -> None:
    """The local stack's rule (``StackConfig``): min(N, 3) copies, one fewer in sync, the same
    for Kafka's own topics; cluster fencing as ``orderstream.stack.broker`` sets it."""
    nodes = brokers(topology)
    stack = StackConfig(root=ROOT, local=ROOT / ".local", brokers=len(nodes))
    rf, min_isr = stack.replication_factor, stack.min_insync_replicas
    for kafka in nodes.values():
        env = kafka["environment"]
        assert env_int(env, "KAFKA_DEFAULT_REPLICATION_FACTOR", 1) == rf
        assert env_int(env, "KAFKA_MIN_INSYNC_REPLICAS", 1) == min_isr
        for topic in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
            assert env_int(env, f"KAFKA_{topic}_REPLICATION_FACTOR", 1) == rf
        for topic in ("TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
            assert env_int(env, f"KAFKA_{topic}_MIN_ISR", 1) == min_isr
        assert str(env.get("KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE", "false")) == "false"
        if len(nodes) > 1:
            assert env_int(env, "KAFKA_BROKER_SESSION_TIMEOUT_MS", 9000) == (
                broker.CLUSTER_SESSION_TIMEOUT_MS
            )
            assert env_int(env, "KAFKA_BROKER_HEARTBEAT_INTERVAL_MS", 2000) == (
                broker.CLUSTER_HEARTBEAT_MS
            )
    defaults = Settings()
    for name in APP_SERVICES:
        env = topology["services"][name]["environment"]
        assert env_int(env, "ORDERSTREAM_REPLICATION_FACTOR", defaults.replication_factor) == rf
        assert (
            env_int(env, "ORDERSTREAM_MIN_INSYNC_REPLICAS", defaults.min_insync_replicas) == min_isr
        ), name


def test_bootstrap_lists_every_broker(topology: dict[str, Any]) -> None:
    nodes = brokers(topology)
    inside = set()
    for kafka in nodes.values():
        advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
        (plaintext,) = (a for a in advertised if a.startswith("PLAINTEXT://"))
        inside.add(plaintext.removeprefix("PLAINTEXT://"))
    assert len(inside) == len(nodes)
    for name in APP_SERVICES:
        bootstrap = topology["services"][name]["environment"]["KAFKA_BOOTSTRAP"]
        assert set(bootstrap.split(",")) == inside, name


def test_init_waits_for_every_broker(topology: dict[str, Any]) -> None:
    depends = topology["services"]["init"]["depends_on"]
    for name in broker_names(topology).values():
        assert depends[name]["condition"] == "service_healthy", name


def health_url(service: dict[str, Any]) -> str:
    match = re.search(r"https?://[^'\"\s]+", " ".join(service["healthcheck"]["test"]))
    assert match is not None
    return match.group(0)


def test_every_long_running_service_has_a_healthcheck(topology: dict[str, Any]) -> None:
    services = topology["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # each app service asks the readiness of the port its command serves
    ingress = services["ingress"]
    bind = ingress["command"][ingress["command"].index("--bind") + 1]
    assert health_url(ingress) == f"http://127.0.0.1:{bind.rpartition(':')[2]}/readyz"
    worker = services["worker"]
    index = int(worker["command"][worker["command"].index("--index") + 1])
    assert health_url(worker) == f"http://127.0.0.1:{WEB_PORT_BASE + index}/readyz"
    for name in ("sink", "relay"):
        command = services[name]["command"]
        port = command[command.index("--metrics-port") + 1]
        assert health_url(services[name]) == f"http://127.0.0.1:{port}/readyz", name


def program_variables() -> set[str]:
    """The variables the programs read: ``Settings``'s and the ingress' own."""
    names = {
        f.name.upper() if f.name in _STACK_NAMES else f"ORDERSTREAM_{f.name.upper()}"
        for f in fields(Settings)
    }
    ingress = (ROOT / "ingress" / "config.py").read_text()
    names |= set(re.findall(r"\"(INGRESS_[A-Z0-9_]+)\"", ingress))
    assert "INGRESS_WORKERS" in names and "KAFKA_BOOTSTRAP" in names
    return names


def test_app_services_set_only_variables_the_programs_read(topology: dict[str, Any]) -> None:
    known = program_variables()
    for name in APP_SERVICES:
        unknown = set(topology["services"][name]["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)}"


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
