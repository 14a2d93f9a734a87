"""deploy/k8s stays a valid, consistent description of the pipeline on Kubernetes.

No cluster runs here, so the kustomization is rendered offline: by `kubectl kustomize` when
a client is installed, else by the small loader below (resources, namespace, labels, the
secret generator, images: the only features deploy/k8s uses). Core objects are checked
against Kubernetes' own schemas (kubernetes-validate); the operators' resources (Strimzi,
CloudNativePG) structurally; and every cross-reference between objects and to the programs
(env names, commands, ports, selectors, replication) is checked both ways.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from orderstream.core.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
# a version the installed kubernetes-validate ships schemas for (setup.cfg pins it)
KUBERNETES_VERSION = "1.34"
CORE_KINDS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "Job",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
}
OPERATOR_KINDS = {"Kafka", "KafkaNodePool", "Cluster"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
CLUSTER_SCOPED = {"Namespace"}
# names the programs read that are no Settings field and not in ingress/config.py
EXTRA_ENV_NAMES = {
    # stale-tolerant reads, pointed at the CloudNativePG replicas; Settings is gaining a
    # `database_read_url` field for it (then Settings' own fields cover it too)
    "DATABASE_READ_URL",
    # the database password: libpq (under psycopg) reads it when the URL carries none, so
    # the URLs stay in the ConfigMap and the password only in the Secret
    "PGPASSWORD",
}

Obj = dict[str, Any]


# -- rendering ---------------------------------------------------------------------------


def kustomization() -> Obj:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def env_file(name: str) -> Path:
    """An env file of the secret generator; its committed ``.example`` while the real one
    (never committed) is absent, as on every machine but an operator's."""
    path = K8S / name
    return path if path.exists() else K8S / f"{name}.example"


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith("#")}


def generated_secrets(kust: Obj) -> Iterator[Obj]:
    for gen in kust.get("secretGenerator", []):
        assert gen.get("options", {}).get("disableNameSuffixHash") is True, (
            "the loader does not hash names; CRDs name the secret literally"
        )
        values: dict[str, str] = {}
        for name in gen.get("envs", []):
            values.update(read_env(env_file(name)))
        values.update(line.split("=", 1) for line in gen.get("literals", []))
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        yield {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": gen["name"]},
            "type": gen.get("type", "Opaque"),
            "data": data,
        }


def pod_containers(obj: Obj) -> list[Obj]:
    return (
        list(obj["spec"]["template"]["spec"]["containers"]) if obj["kind"] in WORKLOAD_KINDS else []
    )


def load_offline() -> list[Obj]:
    """What `kubectl kustomize deploy/k8s` prints, for the features deploy/k8s uses."""
    kust = kustomization()
    objects: list[Obj] = []
    for name in kust["resources"]:
        objects += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    objects += generated_secrets(kust)
    images = {image["name"]: image for image in kust.get("images", [])}
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = kust["namespace"]
        for label in kust.get("labels", []):
            meta.setdefault("labels", {}).update(label["pairs"])
            if label.get("includeTemplates") and obj["kind"] in WORKLOAD_KINDS:
                template = obj["spec"]["template"].setdefault("metadata", {})
                template.setdefault("labels", {}).update(label["pairs"])
        for container in pod_containers(obj):
            image = images.get(container["image"])
            if image is not None:
                container["image"] = f"{image['newName']}:{image['newTag']}"
    return objects


def load_with_kubectl() -> list[Obj] | None:
    """The real render, when a kustomize client is installed (None when not)."""
    kubectl = shutil.which("kubectl")
    command = [kubectl, "kustomize"] if kubectl else None
    if command is None and (kustomize := shutil.which("kustomize")):
        command = [kustomize, "build"]
    if command is None:
        return None
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "k8s"
        shutil.copytree(K8S, copy)
        for gen in kustomization().get("secretGenerator", []):
            for name in gen.get("envs", []):
                shutil.copy(env_file(name), copy / name)
        out = subprocess.run([*command, str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    objects = load_with_kubectl()
    return load_offline() if objects is None else objects


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def config_map(objects: list[Obj]) -> dict[str, str]:
    return dict(one(objects, "ConfigMap", "orderstream-config")["data"])


def program_containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container running the project's image."""
    image = kustomization()["images"][0]["newName"]
    for obj in objects:
        for container in pod_containers(obj):
            if container["image"].split(":")[0] == image:
                yield obj, container


# -- the files and the render ------------------------------------------------------------


def test_every_manifest_is_listed() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_kinds_are_known_and_namespaced_and_labelled(rendered: list[Obj]) -> None:
    assert {obj["kind"] for obj in rendered} <= CORE_KINDS | OPERATOR_KINDS
    for obj in rendered:
        meta = obj["metadata"]
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == "orderstream", meta["name"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "orderstream", meta["name"]
    assert one(rendered, "Namespace")["metadata"]["name"] == "orderstream"


def test_core_objects_match_the_kubernetes_schemas(rendered: list[Obj]) -> None:
    checked = set()
    for obj in rendered:
        if obj["kind"] in CORE_KINDS:
            # strict: an unknown (misspelt) field is an error, not silently dropped
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            checked.add(obj["kind"])
    assert checked == CORE_KINDS


# -- the operators' resources ------------------------------------------------------------


def test_kafka_is_three_combined_replicated_nodes(rendered: list[Obj]) -> None:
    kafka = one(rendered, "Kafka")
    pool = one(rendered, "KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["storage"]["type"] == "persistent-claim"
    assert pool["spec"]["storage"]["deleteClaim"] is False
    assert re.fullmatch(r"4\.\d+\.\d+", kafka["spec"]["kafka"]["version"])
    config = kafka["spec"]["kafka"]["config"]
    assert config == config | {
        "default.replication.factor": 3,
        "min.insync.replicas": 2,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.min.isr": 2,
        "unclean.leader.election.enable": False,
        "auto.create.topics.enable": False,
    }
    assert config["default.replication.factor"] <= pool["spec"]["replicas"]


def test_postgres_is_a_primary_and_a_replica_owned_by_the_app(rendered: list[Obj]) -> None:
    cluster = one(rendered, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] == 2
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert initdb["database"] == initdb["owner"] == "orderstream"
    secret = one(rendered, "Secret", initdb["secret"]["name"])
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(secret["data"]["username"]).decode() == initdb["owner"]
    assert secret["data"]["password"]


# -- the programs ------------------------------------------------------------------------


def known_env_names() -> set[str]:
    """Every variable the programs read: Settings' fields, ingress/config.py's own."""
    settings = set(Settings().to_env())
    assert len(settings) == len(fields(Settings))
    ingress = set(
        re.findall(r'env\.get\("([A-Z_]+)"', (ROOT / "ingress" / "config.py").read_text())
    )
    assert "INGRESS_WORKERS" in ingress
    return settings | ingress | EXTRA_ENV_NAMES


def test_every_env_name_is_read_by_the_programs(rendered: list[Obj]) -> None:
    known = known_env_names()
    config = config_map(rendered)
    assert set(config) <= known, set(config) - known
    for obj, container in program_containers(rendered):
        names = {env["name"] for env in container.get("env", [])}
        assert names <= known, (obj["metadata"]["name"], names - known)
        refs = [src["configMapRef"]["name"] for src in container.get("envFrom", [])]
        assert refs == ["orderstream-config"], obj["metadata"]["name"]


def test_every_secret_reference_resolves(rendered: list[Obj]) -> None:
    secrets = {s["metadata"]["name"]: s["data"] for s in of_kind(rendered, "Secret")}
    for obj, container in program_containers(rendered):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in secrets[ref["name"]], (obj["metadata"]["name"], ref)


def test_secret_placeholders_are_marked_and_kept_out_of_git_and_images() -> None:
    example = read_env(K8S / "secrets.env.example")
    assert {"STOREFRONT_KEY", "ADMIN_KEY", "password"} <= set(example)
    assert all(value.startswith("REPLACE-ME") for value in example.values())
    assert "deploy/k8s/secrets.env" in (ROOT / ".gitignore").read_text().splitlines()
    dockerignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "deploy/k8s/secrets.env" in dockerignore


def test_addresses_name_the_services(rendered: list[Obj]) -> None:
    config = config_map(rendered)
    kafka = one(rendered, "Kafka")
    plain = next(x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"])
    assert (
        config["KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    )
    database = one(rendered, "Cluster")["metadata"]["name"]
    for name, role in (("DATABASE_URL", "rw"), ("DATABASE_READ_URL", "ro")):
        url = urlsplit(config[name])
        assert url.scheme == "postgresql+psycopg"
        assert url.password is None, f"{name}: the password belongs in the Secret"
        assert (url.hostname, url.port) == (f"{database}-{role}", 5432)
    for name, workload in (("REDIS_URL", "redis"), ("INGRESS_URL", "orderstream-ingress")):
        url = urlsplit(config[name])
        service = one(rendered, "Service", url.hostname)
        assert url.port in {p["port"] for p in service["spec"]["ports"]}
        assert selects(service["spec"]["selector"], workload_by_name(rendered, workload))


def workload_by_name(objects: list[Obj], name: str) -> Obj:
    return next(o for o in objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] == name)


def selects(selector: dict[str, str], workload: Obj) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return selector.items() <= labels.items()


def compose_commands() -> dict[str, list[str]]:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return {name: service["command"] for name, service in services.items() if "command" in service}


def test_commands_are_those_of_compose(rendered: list[Obj]) -> None:
    compose = compose_commands()
    commands = {
        obj["metadata"]["name"]: container["command"]
        for obj, container in program_containers(rendered)
    }
    assert commands["orderstream-ingress"] == compose["ingress"]
    assert commands["orderstream-sink"] == compose["sink"]
    assert commands["orderstream-relay"] == compose["relay"]
    assert commands["orderstream-init"][:3] == compose["init"]
    shell, flag, script = commands["orderstream-worker"]
    assert (shell, flag) == ("sh", "-c")
    assert script.startswith('exec orderstream worker --index "${HOSTNAME##*-}" --web-host 0.0.0.0')


def probe_port(probe: Obj) -> int | str:
    action = probe.get("httpGet") or probe.get("tcpSocket")
    assert action is not None, f"no httpGet or tcpSocket in {probe}"
    return action["port"]


def test_every_workload_has_probes_and_requests(rendered: list[Obj]) -> None:
    for obj in rendered:
        for container in pod_containers(obj):
            name = f"{obj['metadata']['name']}/{container['name']}"
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), name
            assert "memory" in container["resources"].get("limits", {}), name
            if obj["kind"] == "Job":
                continue
            ports = {p.get("name") for p in container.get("ports", [])}
            ports |= {p["containerPort"] for p in container.get("ports", [])}
            for kind in ("livenessProbe", "readinessProbe"):
                assert kind in container, f"{name}: no {kind}"
                probe = container[kind]
                if "exec" not in probe:
                    assert probe_port(probe) in ports, f"{name}: {kind} on an undeclared port"


def test_probes_ask_the_programs_own_endpoints(rendered: list[Obj]) -> None:
    paths = {
        obj["metadata"]["name"]: (
            container["livenessProbe"]["httpGet"]["path"],
            container["readinessProbe"]["httpGet"]["path"],
            container["readinessProbe"]["httpGet"]["port"],
        )
        for obj, container in program_containers(rendered)
        if obj["kind"] != "Job"
    }
    assert paths["orderstream-ingress"] == ("/healthz", "/readyz", "http")
    for name in ("orderstream-sink", "orderstream-relay"):
        assert paths[name] == ("/livez", "/readyz", "metrics")
    assert paths["orderstream-worker"] == ("/livez", "/readyz", "web")
    worker = workload_by_name(rendered, "orderstream-worker")
    (port,) = pod_containers(worker)[0]["ports"]
    assert port["containerPort"] == 6066
    assert f"--web-port {port['containerPort']}" in pod_containers(worker)[0]["command"][2]


def test_workers_keep_their_tables_on_their_own_volume(rendered: list[Obj]) -> None:
    worker = workload_by_name(rendered, "orderstream-worker")
    assert worker["kind"] == "StatefulSet"
    (container,) = pod_containers(worker)
    env = {e["name"]: e.get("value") for e in container["env"]}
    (claim,) = worker["spec"]["volumeClaimTemplates"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert Path(env["ORDERSTREAM_DATA_DIR"]).is_relative_to(mount["mountPath"])
    governing = one(rendered, "Service", worker["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    assert selects(governing["spec"]["selector"], worker)
    assert worker["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_pdb_selects_the_workers_and_nothing_else(rendered: list[Obj]) -> None:
    pdb = one(rendered, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    chosen = [
        o["metadata"]["name"]
        for o in rendered
        if o["kind"] in WORKLOAD_KINDS and selects(selector, o)
    ]
    assert chosen == ["orderstream-worker"]
    assert workload_by_name(rendered, "orderstream-worker")["kind"] == "StatefulSet"


def test_hpa_scales_the_ingress_on_cpu(rendered: list[Obj]) -> None:
    hpa = one(rendered, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    ingress = workload_by_name(rendered, target["name"])
    assert (
        (target["apiVersion"], target["kind"])
        == ("apps/v1", ingress["kind"])
        == (
            "apps/v1",
            "Deployment",
        )
    )
    assert pod_containers(ingress)[0]["command"][0] == "gunicorn"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_replication_settings_are_the_kafka_clusters(rendered: list[Obj]) -> None:
    config = config_map(rendered)
    kafka = one(rendered, "Kafka")["spec"]["kafka"]["config"]
    assert int(config["ORDERSTREAM_REPLICATION_FACTOR"]) == kafka["default.replication.factor"]
    assert int(config["ORDERSTREAM_MIN_INSYNC_REPLICAS"]) == kafka["min.insync.replicas"]
    assert int(config["ORDERSTREAM_STANDBY_REPLICAS"]) == 1
